-- Presence remove (SERVER.md §3.8).
-- KEYS[1] expiry index zset, KEYS[2] data hash, KEYS[3] user expiry zset, KEYS[4] user hash.
-- ARGV[1] client id, ARGV[2] user id, ARGV[3] user mapping "0"|"1",
-- ARGV[4] hash-field TTL "0"|"1".
local field_ttl = ARGV[4] == "1"
-- Only a client that was still present held one of its user's connection counts.
local existed = redis.call("hdel", KEYS[2], ARGV[1]) == 1
if not field_ttl then
    redis.call("zrem", KEYS[1], ARGV[1])
end
if ARGV[3] == "1" and existed then
    local left = redis.call("hincrby", KEYS[4], ARGV[2], -1)
    if left <= 0 then
        redis.call("hdel", KEYS[4], ARGV[2])
        if not field_ttl then
            redis.call("zrem", KEYS[3], ARGV[2])
        end
    end
end
return 1
