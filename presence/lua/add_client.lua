-- Presence add (SERVER.md §3.8, index mode, no user mapping).
-- KEYS[1] expiry index zset, KEYS[2] data hash.
-- ARGV[1] ttl (s), ARGV[2] expire-at (Unix s), ARGV[3] client id, ARGV[4] encoded ClientInfo.
redis.call("hset", KEYS[2], ARGV[3], ARGV[4])
redis.call("expire", KEYS[2], ARGV[1])
redis.call("zadd", KEYS[1], ARGV[2], ARGV[3])
redis.call("expire", KEYS[1], ARGV[1])
return 1
