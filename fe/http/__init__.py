"""The FE's HTTP door (StarRocks' http_port 8030): /metrics, /api/health, /api/bootstrap, Stream
Load's redirect to a BE, and the web console at /."""
