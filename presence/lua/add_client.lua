-- Presence add (SERVER.md §3.8).
-- KEYS[1] expiry index zset, KEYS[2] data hash, KEYS[3] user expiry zset, KEYS[4] user hash.
-- ARGV[1] ttl (s), ARGV[2] expire-at (Unix s), ARGV[3] client id, ARGV[4] encoded ClientInfo,
-- ARGV[5] user id, ARGV[6] user mapping "0"|"1", ARGV[7] hash-field TTL "0"|"1".
-- Hash-field-TTL mode (Redis >= 7.4) lets Redis expire the fields itself instead of keeping
-- the zset indexes; the caller probed HEXPIRE at start-up.
local user_mapping = ARGV[6] == "1"
local field_ttl = ARGV[7] == "1"
local client_is_new = false
if user_mapping then
    client_is_new = redis.call("hexists", KEYS[2], ARGV[3]) == 0
end
redis.call("hset", KEYS[2], ARGV[3], ARGV[4])
redis.call("expire", KEYS[2], ARGV[1])
if field_ttl then
    redis.call("hexpire", KEYS[2], ARGV[1], "FIELDS", "1", ARGV[3])
else
    redis.call("zadd", KEYS[1], ARGV[2], ARGV[3])
    redis.call("expire", KEYS[1], ARGV[1])
end
if user_mapping then
    -- A refresh of a known client must not count its user twice.
    if client_is_new then
        redis.call("hincrby", KEYS[4], ARGV[5], 1)
    end
    redis.call("expire", KEYS[4], ARGV[1])
    if field_ttl then
        redis.call("hexpire", KEYS[4], ARGV[1], "FIELDS", "1", ARGV[5])
    else
        redis.call("zadd", KEYS[3], ARGV[2], ARGV[5])
        redis.call("expire", KEYS[3], ARGV[1])
    end
end
return 1
