"""lukittu-release: publish builds to the release service from CI."""

__version__ = "0.1.0"
