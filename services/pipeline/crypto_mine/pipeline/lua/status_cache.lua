-- Writes one user's cached status unless a newer one is there (status_cache.py).
-- KEYS: 1 the user's status.
-- ARGV: 1 clicks, 2 balance, 3 last click ms, 4 ttl (s).
-- Returns 1 when written, 0 when a newer status stays.
-- include: write_status.lua
return write_status(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
