"""Reports computed by the tool: the case studies (``terraops report case-study``)."""
