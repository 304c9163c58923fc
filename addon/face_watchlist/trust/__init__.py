"""Trust: the audit log, accuracy on the user's own gallery, encryption at rest."""
