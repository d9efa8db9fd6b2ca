//! Pure-Rust throughput of `Core::process` (no Python): `cargo run --release --example core_bench`.

use std::time::Instant;

use tokenlord_core::batch::{Config, Core, Message};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(400_000);
    let batch: usize = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let mon: i64 = 1_736_121_600_000;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = |m: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % m
    };
    let models = ["gpt-4o", "o3", "gpt-4.1-mini"];
    let values: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            format!(
                r#"{{"event_id":"id-{i}-{}","ts":{},"user":"user{}","team":"t","model":"{}","input_tokens":{},"output_tokens":{},"cached_input_tokens":0}}"#,
                rnd(1 << 40),
                mon + rnd(6 * 86_400_000) as i64,
                rnd(5000),
                models[rnd(3) as usize],
                rnd(9000) + 1,
                rnd(900) + 1
            )
            .into_bytes()
        })
        .collect();
    if std::env::var("PARSE_ONLY").is_ok() {
        println!("parse only: {:.0} events/s", parse_only(&values));
    }
    let mut core = Core::new(Config::default()).expect("config");
    let start = Instant::now();
    let mut accepted = 0;
    for (c, chunk) in values.chunks(batch).enumerate() {
        let msgs: Vec<Message<'_>> = chunk
            .iter()
            .enumerate()
            .map(|(i, v)| Message {
                partition: 0,
                offset: (c * batch + i) as i64,
                value: v,
            })
            .collect();
        let out = core.process(&msgs, mon + 8 * 86_400_000);
        accepted += out.events.len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{n} events, {accepted} accepted, {:.0} events/s",
        n as f64 / secs
    );
}

#[allow(dead_code)]
fn parse_only(values: &[Vec<u8>]) -> f64 {
    let start = Instant::now();
    let mut ok = 0usize;
    for v in values {
        if tokenlord_core::event::parse_event(v).is_ok() {
            ok += 1;
        }
    }
    assert!(ok > 0);
    values.len() as f64 / start.elapsed().as_secs_f64()
}
