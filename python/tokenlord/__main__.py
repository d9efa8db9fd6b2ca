from tokenlord.cli import main

raise SystemExit(main())
