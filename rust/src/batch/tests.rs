use super::*;
use crate::fingerprint::Fingerprint;
use crate::guard::Limits;
use crate::time::{parse_rfc3339, DAY_MS, HOUR_MS, WEEK_MS};

const MON: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z, a Monday
const FAR_FUTURE: i64 = 4_000_000_000_000;

fn ev(id: &str, ts: i64, user: &str, tokens: u64) -> Vec<u8> {
    format!(r#"{{"event_id":"{id}","ts":{ts},"user":"{user}","model":"gpt-4o","input_tokens":{tokens},"output_tokens":0}}"#)
        .into_bytes()
}

/// `values` as the messages of `partition` from offset `first` on.
fn messages<V: AsRef<[u8]>>(partition: i32, first: i64, values: &[V]) -> Vec<Message<'_>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| Message {
            partition,
            offset: first + i as i64,
            value: v.as_ref(),
        })
        .collect()
}

fn run(
    core: &mut Core,
    partition: i32,
    values: &[Vec<u8>],
) -> (usize, Vec<String>, u64, Vec<WeeklyRow>) {
    // Each call continues the partition's offsets (a new batch, not a replay).
    let first = core.parts.get(&partition).map_or(0, |s| s.resume);
    let msgs = messages(partition, first, values);
    let out = core.process(&msgs, FAR_FUTURE);
    (
        out.events.len(),
        out.rejected.iter().map(|r| r.reason.to_string()).collect(),
        out.duplicates,
        out.weekly,
    )
}

#[test]
fn duplicates_are_counted_once_within_the_horizon() {
    let mut core = Core::new(Config::default()).unwrap();
    let (n, rej, dups, weekly) = run(
        &mut core,
        0,
        &[
            ev("a", MON, "u", 10),
            ev("a", MON, "u", 10),
            ev("b", MON + 1, "u", 5),
        ],
    );
    assert_eq!((n, rej.len(), dups), (2, 0, 1));
    assert_eq!(weekly.len(), 1);
    assert_eq!(weekly[0].cell.input_tokens, 15);
    // Another batch: still a duplicate.
    let (n, _, dups, _) = run(&mut core, 0, &[ev("a", MON, "u", 10)]);
    assert_eq!((n, dups), (0, 1));
    // Past the horizon (24 h of event time) the id is forgotten.
    run(&mut core, 0, &[ev("c", MON + DAY_MS + 1, "u", 1)]);
    let (n, _, dups, _) = run(&mut core, 0, &[ev("a", MON, "u", 10)]);
    assert_eq!((n, dups), (1, 0));
    // Partitions are independent.
    let (n, _, _, _) = run(&mut core, 1, &[ev("b", MON + 1, "u", 5)]);
    assert_eq!(n, 1);
}

#[test]
fn weeks_close_after_grace_and_late_events_are_rejected() {
    let mut core = Core::new(Config::default()).unwrap();
    let sunday_last = parse_rfc3339("2024-01-07T23:59:59.999Z").unwrap();
    run(&mut core, 0, &[ev("a", sunday_last, "u", 7)]);
    // Next week, inside the grace hour: the old week still takes events.
    let (n, rej, _, weekly) = run(
        &mut core,
        0,
        &[
            ev("b", MON + WEEK_MS + HOUR_MS - 1, "u", 1),
            ev("c", MON, "u", 2),
        ],
    );
    assert_eq!((n, rej.len()), (2, 0));
    assert!(weekly.iter().all(|w| !w.closed));
    // The watermark reaches week end + grace: week 1 closes, final rows once.
    let (_, _, _, weekly) = run(&mut core, 0, &[ev("d", MON + WEEK_MS + HOUR_MS, "v", 1)]);
    let finals: Vec<&WeeklyRow> = weekly.iter().filter(|w| w.closed).collect();
    assert_eq!(finals.len(), 1);
    assert_eq!(
        (
            finals[0].week_start,
            finals[0].cell.input_tokens,
            finals[0].cell.requests
        ),
        (MON, 9, 2)
    );
    let (n, rej, _, _) = run(&mut core, 0, &[ev("e", MON + 5, "u", 1)]);
    assert_eq!((n, rej), (0, vec!["late".to_owned()]));
    assert_eq!(
        core.state_size().open_weeks,
        1,
        "closed week state is dropped"
    );
}

#[test]
fn future_events_are_rejected_against_the_batch_clock() {
    let mut core = Core::new(Config::default()).unwrap();
    let v = ev("a", MON + 600_001, "u", 1);
    let out = core.process(
        &[Message {
            partition: 0,
            offset: 0,
            value: &v,
        }],
        MON,
    );
    assert_eq!(out.rejected[0].reason, Reason::FutureTimestamp);
    let v = ev("a", MON + 600_000, "u", 1);
    let out = core.process(
        &[Message {
            partition: 0,
            offset: 1,
            value: &v,
        }],
        MON,
    );
    assert_eq!(out.events.len(), 1);
}

#[test]
fn hourly_rollover_and_restatement() {
    let mut core = Core::new(Config::default()).unwrap();
    let msgs = [
        ev("a", MON + HOUR_MS - 1, "u", 1),
        ev("b", MON + HOUR_MS, "u", 2),
    ];
    let m: Vec<Message<'_>> = msgs
        .iter()
        .map(|v| Message {
            partition: 0,
            offset: 0,
            value: v,
        })
        .collect();
    let out = core.process(&m, FAR_FUTURE);
    let mut hours: Vec<(i64, u64)> = out
        .hourly
        .iter()
        .map(|h| (h.hour, h.cell.input_tokens))
        .collect();
    hours.sort_unstable();
    assert_eq!(hours, vec![(MON, 1), (MON + HOUR_MS, 2)]);
    let v = ev("c", MON + HOUR_MS + 5, "u", 3);
    let out2 = core.process(
        &[Message {
            partition: 0,
            offset: 2,
            value: &v,
        }],
        FAR_FUTURE,
    );
    assert_eq!(out2.hourly.len(), 1, "only touched cells are restated");
    assert_eq!(
        out2.hourly[0].cell.input_tokens, 5,
        "restatements are cumulative"
    );
    assert!(out2.version > out.version);
}

#[test]
fn state_is_bounded_by_open_weeks_and_horizon() {
    let mut core = Core::new(Config::default()).unwrap();
    for day in 0..120 {
        let batch: Vec<Vec<u8>> = (0..50)
            .map(|u| {
                ev(
                    &format!("{day}-{u}"),
                    MON + day * DAY_MS,
                    &format!("user{u}"),
                    1,
                )
            })
            .collect();
        run(&mut core, 0, &batch);
    }
    let s = core.state_size();
    assert!(s.open_weeks <= 2, "{s:?}");
    assert!(s.weekly_cells <= 100, "{s:?}");
    assert!(s.dedupe_ids <= 100, "{s:?}");
}

#[test]
fn a_restore_in_chunks_equals_one_in_one_go() {
    let users = ["u", "v", "w"];
    let ids: Vec<String> = (0..40).map(|i| format!("e{i}")).collect();
    let stored: Vec<StoredEvent<'_>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| StoredEvent {
            event_id: id,
            contribution: Contribution {
                ts: MON + 6 * DAY_MS + i as i64 * 3_000_000,
                user: users[i % 3],
                team: if i % 5 == 0 { "t" } else { "" },
                model: "m",
                input_tokens: 5000 + (i % 2) as u64,
                output_tokens: 10,
                cached_input_tokens: 0,
                wasted_tokens: (i % 4) as u64,
                waste_reason: if i % 4 > 0 { "agent_loop" } else { "" },
                cost_usd: 0.25,
            },
            fingerprint: Fingerprint::default(),
        })
        .collect();
    let wm = stored.iter().map(|e| e.contribution.ts).max();
    let mut whole = Core::new(Config::default()).unwrap();
    let a = whole.restore(0, wm, 7, &stored, Some(40));
    let mut chunked = Core::new(Config::default()).unwrap();
    chunked.restore_begin(0, wm, 7, Some(40));
    for part in stored.chunks(7) {
        chunked.restore_events(0, part);
    }
    let b = chunked.restore_end(0);
    assert_eq!(
        (a.version, &a.weekly, &a.hourly, &a.waste),
        (b.version, &b.weekly, &b.hourly, &b.waste)
    );
    assert!(!a.weekly.is_empty());
    // ...and the same state: the next batch gets the same verdicts and rows.
    let msg = ev("e39", MON + 6 * DAY_MS + 3_000_001, "v", 5001);
    let next = ev("n", MON + 6 * DAY_MS + 200_000_000, "v", 5001);
    let m = [(40, &msg), (41, &next)].map(|(offset, v)| Message {
        partition: 0,
        offset,
        value: v,
    });
    let (x, y) = (
        whole.process(&m, FAR_FUTURE),
        chunked.process(&m, FAR_FUTURE),
    );
    assert_eq!(x.duplicates, 1);
    assert_eq!(
        (x.duplicates, &x.weekly, x.events.len()),
        (y.duplicates, &y.weekly, y.events.len())
    );
    assert_eq!(whole.state_size(), chunked.state_size());
}

#[test]
fn restore_rebuilds_the_waste_memory() {
    // Two identical counts-only requests stored; the third, seconds
    // later, is judged a storm exactly as without the restart.
    let contribution = |ts| Contribution {
        ts,
        user: "u",
        team: "",
        model: "m",
        input_tokens: 5000,
        output_tokens: 10,
        cached_input_tokens: 0,
        wasted_tokens: 0,
        waste_reason: "",
        cost_usd: 0.0,
    };
    let stored: Vec<StoredEvent<'_>> = ["a", "b"]
        .iter()
        .zip([MON, MON + 1000])
        .map(|(id, ts)| StoredEvent {
            event_id: id,
            contribution: contribution(ts),
            fingerprint: Fingerprint::default(),
        })
        .collect();
    let mut core = Core::new(Config::default()).unwrap();
    core.restore(0, Some(MON + 1000), 0, &stored, None);
    let msg = format!(
        r#"{{"event_id":"c","ts":{},"user":"u","model":"m","input_tokens":5000,"output_tokens":10}}"#,
        MON + 2000
    );
    let m = [Message {
        partition: 0,
        offset: 9,
        value: msg.as_bytes(),
    }];
    let out = core.process(&m, MON + 3000);
    assert_eq!(
        out.events[0].waste_reason,
        Some(crate::waste::WasteReason::RetryStorm)
    );
    assert_eq!(out.events[0].wasted_tokens, 5010);
    assert!(core.state_size().waste_entries > 0);
}

#[test]
fn restore_rebuilds_dedupe_and_windows() {
    let mut core = Core::new(Config::default()).unwrap();
    let stored = [StoredEvent {
        event_id: "a",
        contribution: Contribution {
            ts: MON,
            user: "u",
            team: "t",
            model: "m",
            input_tokens: 4,
            output_tokens: 1,
            cached_input_tokens: 0,
            wasted_tokens: 0,
            waste_reason: "",
            cost_usd: 0.5,
        },
        fingerprint: Fingerprint::default(),
    }];
    let out = core.restore(3, Some(MON), 41, &stored, None);
    assert_eq!(out.weekly.len(), 1);
    assert_eq!(out.weekly[0].cell.team, "t");
    assert!(out.version > 41);
    let (n, _, dups, weekly) = run(&mut core, 3, &[ev("a", MON, "u", 4), ev("b", MON, "u", 1)]);
    assert_eq!((n, dups), (1, 1));
    assert_eq!(weekly[0].cell.input_tokens, 5);
}

#[test]
fn messages_below_the_restored_progress_are_skipped_whatever_their_time() {
    let day = 86_400_000;
    let mut core = Core::new(Config::default()).unwrap();
    // Offsets 0..2 applied: an old event (beyond the dedupe horizon of the
    // watermark) and a recent one; a replay of both must change nothing.
    let old = ev("old", MON + 1000, "u", 7);
    let recent = ev("new", MON + 3 * day, "u", 5);
    let (n, _, _, _) = run(&mut core, 0, &[old.clone(), recent.clone()]);
    assert_eq!(n, 2);
    let msgs = [
        Message {
            partition: 0,
            offset: 0,
            value: &old,
        },
        Message {
            partition: 0,
            offset: 1,
            value: &recent,
        },
        Message {
            partition: 0,
            offset: 2,
            value: &ev("next", MON + 3 * day, "u", 1),
        },
    ];
    let out = core.process(&msgs, FAR_FUTURE);
    assert_eq!((out.replayed, out.events.len(), out.duplicates), (2, 1, 0));
    assert_eq!(out.progress, vec![(0, 3)]);
    assert_eq!(out.weekly[0].cell.input_tokens, 13);
    // After a restore with progress 2, the same replay is skipped too; without
    // progress, "old" (older than watermark - horizon) would count again.
    for (resume, counted) in [(Some(2), 13), (None, 20)] {
        let new = Contribution {
            ts: MON + 3 * day,
            user: "u",
            team: "",
            model: "m",
            input_tokens: 5,
            output_tokens: 0,
            cached_input_tokens: 0,
            wasted_tokens: 0,
            waste_reason: "",
            cost_usd: 0.0,
        };
        let stored =
            [("old", MON + 1000, 7), ("new", MON + 3 * day, 5)].map(|(id, ts, n)| StoredEvent {
                event_id: id,
                contribution: Contribution {
                    ts,
                    input_tokens: n,
                    ..new
                },
                fingerprint: Fingerprint::default(),
            });
        core.restore(0, Some(MON + 3 * day), 0, &stored, resume);
        let out = core.process(&msgs[..2], FAR_FUTURE);
        let restated = core.process(&msgs[2..], FAR_FUTURE).weekly;
        assert_eq!(out.replayed, if resume.is_some() { 2 } else { 0 });
        assert_eq!(restated[0].cell.input_tokens, counted, "resume {resume:?}");
    }
}

#[test]
fn errors_are_waste_and_cost_uses_longest_prefix() {
    let cfg = Config {
        prices: vec![
            ("gpt-4".into(), (1.0, 0.5, 2.0).into()),
            ("gpt-4o".into(), (10.0, 5.0, 20.0).into()),
        ],
        ..Config::default()
    };
    let mut core = Core::new(cfg).unwrap();
    let v = format!(
        r#"{{"event_id":"x","ts":{MON},"user":"u","model":"gpt-4o-mini","input_tokens":1000000,"cached_input_tokens":500000,"output_tokens":1000000,"status":"error"}}"#
    );
    let out = core.process(
        &[Message {
            partition: 0,
            offset: 0,
            value: v.as_bytes(),
        }],
        FAR_FUTURE,
    );
    let e = &out.events[0];
    assert!((e.cost_usd - (5.0 + 2.5 + 20.0)).abs() < 1e-9);
    assert_eq!(
        (e.wasted_tokens, e.waste_reason),
        (2_000_000, Some(crate::waste::WasteReason::FailedRequest))
    );
    assert_eq!(out.waste.len(), 1);
}

#[test]
fn text_is_tokenized_when_counts_are_missing() {
    let mut core = Core::new(Config::default()).unwrap();
    let v = format!(
        r#"{{"event_id":"x","ts":{MON},"user":"u","model":"gpt-4o","prompt":"hello world","output":"hi"}}"#
    );
    let w = format!(
        r#"{{"event_id":"y","ts":{MON},"user":"u","model":"mystery-1","prompt":"hello world","output_tokens":3}}"#
    );
    let out = core.process(
        &[
            Message {
                partition: 0,
                offset: 0,
                value: v.as_bytes(),
            },
            Message {
                partition: 0,
                offset: 1,
                value: w.as_bytes(),
            },
        ],
        FAR_FUTURE,
    );
    assert_eq!(
        (
            out.events[0].input_tokens,
            out.events[0].output_tokens,
            out.events[0].tokens_estimated
        ),
        (2, 1, false)
    );
    assert_eq!(
        (
            out.events[1].input_tokens,
            out.events[1].output_tokens,
            out.events[1].tokens_estimated
        ),
        (2, 3, true)
    );
}

fn limited(max_elements: usize, per_message: usize, per_batch: usize) -> Core {
    Core::new(Config {
        limits: Limits {
            max_elements,
            max_rejections_per_message: per_message,
            max_rejections_per_batch: per_batch,
        },
        fault_poison: b"POISON".to_vec(),
        ..Config::default()
    })
    .unwrap()
}

fn ndjson(lines: &[Vec<u8>]) -> Vec<u8> {
    lines.join(&b'\n')
}

#[test]
fn past_the_rejection_cap_the_rest_of_a_message_is_one_rejection() {
    let mut core = Core::new(Config::default()).unwrap();
    let mut lines: Vec<Vec<u8>> = vec![ev("a", MON, "u", 1)];
    lines.extend((0..250).map(|_| b"1".to_vec()));
    lines.push(ev("b", MON, "u", 1));
    let value = ndjson(&lines);
    let msgs = [Message {
        partition: 0,
        offset: 0,
        value: &value,
    }];
    let out = core.process(&msgs, FAR_FUTURE);
    assert_eq!(out.events.len(), 1, "the event before the cap is counted");
    assert_eq!(out.rejected.len(), 101);
    assert!(out.rejected[..100]
        .iter()
        .all(|r| r.reason == Reason::NotAnObject));
    let rest = &out.rejected[100];
    assert_eq!((rest.reason, rest.idx), (Reason::TooManyRejections, 101));
    assert!(rest.raw.ends_with(&lines[251]), "the rest runs to the end");
    let dead: usize = out.rejected.iter().map(|r| r.raw.len()).sum();
    assert!(dead <= value.len(), "{dead} > {}", value.len());
}

#[test]
fn past_the_element_cap_the_rest_is_one_rejection() {
    let mut core = limited(3, 100, 100);
    let items: Vec<String> = (0..5)
        .map(|i| String::from_utf8(ev(&format!("e{i}"), MON, "u", 1)).unwrap())
        .collect();
    let value = format!("[{}]", items.join(","));
    let msgs = [Message {
        partition: 0,
        offset: 0,
        value: value.as_bytes(),
    }];
    let out = core.process(&msgs, FAR_FUTURE);
    assert_eq!(out.events.len(), 3);
    assert_eq!(out.rejected.len(), 1);
    let r = &out.rejected[0];
    assert_eq!((r.reason, r.idx), (Reason::TooManyElements, 3));
    assert_eq!(r.raw, format!("{},{}]", items[3], items[4]).as_bytes());
}

#[test]
fn past_the_batch_cap_each_message_gives_at_most_one_rejection() {
    let mut core = limited(100, 100, 2);
    let bad = ndjson(&[
        b"1".to_vec(),
        b"2".to_vec(),
        b"3".to_vec(),
        ev("x", MON, "u", 1),
    ]);
    let single = b"7".to_vec();
    let values = [&bad, &bad, &single];
    let msgs = messages(0, 0, &values);
    let out = core.process(&msgs, FAR_FUTURE);
    let got: Vec<(i64, u32, String)> = out
        .rejected
        .iter()
        .map(|r| (r.offset, r.idx, r.reason.to_string()))
        .collect();
    let want = [
        (0, 0, "not_an_object"),
        (0, 1, "not_an_object"),
        (0, 2, "too_many_rejections"),
        (1, 0, "too_many_rejections"),
        (2, 0, "not_an_object"), // the whole rest: its own reason
    ];
    let want: Vec<(i64, u32, String)> = want
        .iter()
        .map(|(o, i, r)| (*o, *i, r.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(out.rejected[3].raw, &bad[..], "the whole message, once");
    assert!(out.events.is_empty());
}

#[test]
fn a_message_the_core_fails_on_is_one_poison_rejection() {
    let mut core = limited(100, 100, 100);
    let poison = ndjson(&[ev("p", MON, "u", 1), b"{\"x\":\"POISON\"}".to_vec()]);
    let (a, b) = (ev("a", MON, "u", 1), ev("b", MON, "u", 2));
    let values = [a, poison.clone(), b];
    let msgs = messages(0, 0, &values);
    let out = core.process(&msgs, FAR_FUTURE);
    assert_eq!(out.events.len(), 2);
    assert_eq!(out.rejected.len(), 1);
    let r = &out.rejected[0];
    assert_eq!(
        (r.reason, r.offset, r.raw),
        (Reason::Poison, 1, &poison[..])
    );
    assert_eq!(out.weekly[0].cell.input_tokens, 3);
}

#[test]
fn the_price_cache_is_bounded_whatever_the_model_names() {
    let mut core = Core::new(Config {
        prices: vec![("gpt-4o".into(), (2.5, 1.25, 10.0).into())],
        ..Config::default()
    })
    .unwrap();
    let values: Vec<Vec<u8>> = (0..3 * PRICE_CACHE_MAX)
        .map(|i| {
            format!(r#"{{"event_id":"p{i}","ts":{MON},"user":"u","model":"gpt-4o-{i}","input_tokens":1000000}}"#)
                .into_bytes()
        })
        .collect();
    let msgs = messages(0, 0, &values);
    let out = core.process(&msgs, FAR_FUTURE);
    assert_eq!(out.events.len(), 3 * PRICE_CACHE_MAX);
    assert!(out.events.iter().all(|e| (e.cost_usd - 2.5).abs() < 1e-9));
    assert!(core.prices.len() <= PRICE_CACHE_MAX);
}
