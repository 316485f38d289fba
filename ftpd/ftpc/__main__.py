from ftpd.ftpc.cli import main

raise SystemExit(main())
