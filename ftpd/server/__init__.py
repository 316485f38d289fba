"""The server side of ftpd: the parent that accepts and spawns, the child that
confines itself and runs one client's session, the file library, and the
service's contracts with the OS (pid file, systemd, logs, status).

Nothing here imports ``ftpd.ftpc``; the wire layer (``ftpd.protocol``,
``ftpd.stream``) and ``ftpd.config`` are shared with the client side.
"""
