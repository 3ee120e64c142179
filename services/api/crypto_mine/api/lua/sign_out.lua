-- Signs a token out: no event stream opens with it again, and the ones open end (logout.py).
-- KEYS: 1 the token's sign-out mark, 2 the user's event stream.
-- ARGV: 1 token id, 2 ms until the token expires, 3 stream MAXLEN, 4 stream TTL in seconds,
--       5..7 the entry's type field, its kind and the token field (crypto_mine.pipeline.events).
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', ARGV[5], ARGV[6], ARGV[7], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return 1
