"""mirador: a CQRS read side for microservices, built from change data capture."""

__version__ = "0.1.0"
