//! Following a log file as it grows (dnsmasq's `--log-facility=FILE`).
