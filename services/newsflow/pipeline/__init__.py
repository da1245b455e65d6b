"""Pure pipeline stages: bytes or records in, records out. No Kafka, no env reads, no globals.

The Faust worker and the producer are thin shells around these functions.
"""
