"""Everything that persists: tables, sessions, queries and migrations."""
