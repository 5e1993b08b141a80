"""WebDAV at `{base}/dav/`: WsgiDAV serving the drive, authenticated by app passwords."""
