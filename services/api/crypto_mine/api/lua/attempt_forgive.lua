-- A successful login forgives its username's failures (the client's counter keeps the attempt).
-- KEYS: 1 (username, client) counter, 2 username hash.
-- ARGV: none.
redis.call('DEL', KEYS[1], KEYS[2])
return 0
