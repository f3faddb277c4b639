"""The tamper-evident delivery log: sealing the hash chain and trimming it by retention."""
