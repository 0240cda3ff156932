-- Presence get (SERVER.md §3.8): in index mode drop entries whose expire-at has passed
-- first (in hash-field-TTL mode Redis already did), then return the data hash as a flat
-- array client id, ClientInfo, ...
-- KEYS[1] expiry index zset, KEYS[2] data hash. ARGV[1] now (Unix s),
-- ARGV[2] hash-field TTL "0"|"1".
if ARGV[2] ~= "1" then
    local expired = redis.call("zrangebyscore", KEYS[1], "0", ARGV[1])
    if #expired > 0 then
        -- unpack() is bounded by the Lua C stack, so delete in chunks.
        local chunk = 1000
        for i = 1, #expired, chunk do
            redis.call("hdel", KEYS[2], unpack(expired, i, math.min(i + chunk - 1, #expired)))
        end
        redis.call("zremrangebyscore", KEYS[1], "0", ARGV[1])
    end
end
return redis.call("hgetall", KEYS[2])
