"""The ERP side: the file drop, export writers and confirmation readers."""
