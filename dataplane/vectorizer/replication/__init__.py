"""Primary-to-replica replication: roles, epochs, log streaming, full sync, write concern."""
