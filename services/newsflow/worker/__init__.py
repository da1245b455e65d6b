"""Worker service: the Faust app whose agents run the pipeline stages."""
