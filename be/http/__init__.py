"""The BE's HTTP door (StarRocks' webserver_port 8040 + i): /metrics, /api/health, Stream Load and
the _load_error_log files behind ErrorURL / ErrorLogUrls."""
