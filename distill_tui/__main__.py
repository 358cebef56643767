from distill_tui.cli import main

raise SystemExit(main())
