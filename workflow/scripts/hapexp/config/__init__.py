"""The workflow's configuration: the schema's defaults (`schema`) and the checks with errors in people's words (`check`)."""
