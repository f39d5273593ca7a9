"""RabbitMQ consumers (or in-process ones in the embedded default)."""
