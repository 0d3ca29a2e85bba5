"""Date and time formats (``FORMAT_MODULE_PATH``): one for every timestamp the admin shows."""
