"""Producer service: article files on disk -> the raw Kafka topic."""
