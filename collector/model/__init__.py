"""The data model: instruments, one typed class per record, exact decimals, typed errors."""
