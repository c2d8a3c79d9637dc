from zkregistry.cli import main

raise SystemExit(main())
