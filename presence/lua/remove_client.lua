-- Presence remove (SERVER.md §3.8, index mode, no user mapping).
-- KEYS[1] expiry index zset, KEYS[2] data hash. ARGV[1] client id.
redis.call("hdel", KEYS[2], ARGV[1])
redis.call("zrem", KEYS[1], ARGV[1])
return 1
