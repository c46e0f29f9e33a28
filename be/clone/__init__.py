"""Clone: a BE copies a tablet replica from a peer (full or only the missing versions)."""
