"""One timestamp format across the admin, to the second and with its zone (2026-01-02
03:04:05 UTC), as the audit log, the seats and the downloads show them: Django's English
default ("Jan. 2, 2026, 3:04 a.m.") stops at the minute, which cannot tell apart writes in a
burst or match them with the server's logs."""

DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
