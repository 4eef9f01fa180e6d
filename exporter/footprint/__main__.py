from footprint.cli import main

raise SystemExit(main())
