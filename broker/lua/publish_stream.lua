-- Publish with history (SERVER.md §3.5 B), atomic: idempotency, epoch, version
-- suppression, offset, stream append and the positioned PUB/SUB message.
-- KEYS: stream, meta, result.
-- ARGV: pub, history_size, history_ttl_s, pubsub_channel ("" = don't publish), meta_ttl_s
-- ("0" = no expiry), new_epoch, "publish"|"spublish", result_ttl_s ("" = no idempotency),
-- delta "1"|"", version ("0" = none), version_epoch.
-- Returns {offset, epoch, from_cache "1"|"0", version_skipped "1"|"0"}.
local stream_key = KEYS[1]
local meta_key = KEYS[2]
local result_key = KEYS[3]
local pub = ARGV[1]
local history_size = ARGV[2]
local history_ttl = ARGV[3]
local channel = ARGV[4]
local meta_ttl = ARGV[5]
local new_epoch = ARGV[6]
local publish_command = ARGV[7]
local result_ttl = ARGV[8]
local use_delta = ARGV[9]
local version = ARGV[10]
local version_epoch = ARGV[11]

if result_ttl ~= "" then
  local cached = redis.call("hmget", result_key, "e", "s")
  if cached[1] then
    return {cached[2], cached[1], "1", "0"}
  end
end

local epoch = redis.call("hget", meta_key, "e")
if not epoch then
  epoch = new_epoch
  redis.call("hset", meta_key, "e", epoch)
end

-- Versions are compared as canonical decimal strings: exact for the whole uint64 range,
-- where tonumber() would round above 2^53.
local function version_ge(a, b)
  if #a ~= #b then
    return #a > #b
  end
  return a >= b
end

if version ~= "0" then
  local prev = redis.call("hmget", meta_key, "v", "ve", "s")
  local prev_version, prev_version_epoch = prev[1], prev[2] or ""
  if prev_version and (version_epoch == "" or version_epoch == prev_version_epoch)
      and version_ge(prev_version, version) then
    return {prev[3] or 0, epoch, "0", "1"}
  end
  redis.call("hset", meta_key, "v", version, "ve", version_epoch)
end

local top = redis.call("hincrby", meta_key, "s", 1)
-- tostring() of a Lua number switches to exponent notation above 1e14.
local top_s = string.format("%d", top)
if meta_ttl ~= "0" then
  redis.call("expire", meta_key, meta_ttl)
end

local prev_pub = ""
if use_delta == "1" and top ~= 1 then
  local last = redis.call("xrevrange", stream_key, "+", "-", "COUNT", 1)
  if last[1] then
    local fields = last[1][2]
    for i = 1, #fields, 2 do
      if fields[i] == "d" then
        prev_pub = fields[i + 1]
      end
    end
  end
end

-- A fresh meta (first publish, or the meta expired) starts a new epoch: a stale stream
-- must not mix with it, and its explicit IDs would collide with the new ones.
if top == 1 then
  redis.call("del", stream_key)
  prev_pub = ""
end

redis.call("xadd", stream_key, "MAXLEN", "=", history_size, top_s, "d", pub)
redis.call("expire", stream_key, history_ttl)

if channel ~= "" then
  local msg
  if use_delta == "1" then
    msg = "__d1:" .. top_s .. ":" .. epoch .. ":" .. #prev_pub .. ":" .. prev_pub .. ":" ..
      #pub .. ":" .. pub
  else
    msg = "__p1:" .. top_s .. ":" .. epoch .. "__" .. pub
  end
  redis.call(publish_command, channel, msg)
end

if result_ttl ~= "" then
  redis.call("hset", result_key, "e", epoch, "s", top_s)
  redis.call("expire", result_key, result_ttl)
end

return {top, epoch, "0", "0"}
