"""The iQmetrix Dropship side: models, the Atom parser, the HTTP client and the archive crawl."""
