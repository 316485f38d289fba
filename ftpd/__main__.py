from ftpd.cli import ftpd_main

raise SystemExit(ftpd_main())
