"""SPDY/3.1, the server side: as much of it as `kubectl port-forward` uses.

kubectl (client-go's httpstream/spdy over moby/spdystream) opens streams with SYN_STREAM
and waits for each SYN_REPLY, sends DATA frames, half-closes with FIN, resets with
RST_STREAM, and may send SETTINGS and PING. Header blocks are zlib streams with SPDY/3's
dictionary, one compression context per direction for the whole connection. spdystream
does not enforce flow-control windows, so WINDOW_UPDATEs are read and ignored.
"""
