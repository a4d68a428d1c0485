"""The guestbook API: MySQL (or SQLite locally) with Redis as an optional shared cache."""
