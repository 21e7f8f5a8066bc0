"""Security alerts downstream of Kafka: the loader that stores `security-alerts` in PostgreSQL."""
