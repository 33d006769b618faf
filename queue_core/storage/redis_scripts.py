"""The Lua scripts of the Redis storage, one per atomic step.

Each runs on the server in one EVALSHA, so its commands happen together with nothing in
between. Key names come in as KEYS and everything else as ARGV, except the per-priority
queue lists, named in the script from the key prefix and the level (all keys share one
hash tag). The queue is one list per priority level plus an index of the levels in use,
so an enqueue is one RPUSH, as cheap as Huey's LPUSH. Schedule members are an 8-byte
big-endian sequence number followed by the message, so members with equal due times sort
first-in first-out. Scripts that need the time read the server's clock
(``TIME``), which is the one Redis expires keys by.
"""

SERVER_NOW_MS = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
"""

# Defines register(levels, wake, priority, cap): a priority's list has just stopped being
# empty, so its level goes into the index and one wake-up token is left (the wake list is
# trimmed to ``cap``).
REGISTER_LEVEL = """
local function register(levels, wake, priority, cap)
  redis.call('ZADD', levels, -tonumber(priority), priority)
  if redis.call('RPUSH', wake, '1') > tonumber(cap) then
    redis.call('LTRIM', wake, 0, tonumber(cap) - 1)
  end
end
"""

# Appends a message to its priority's list, registering a list that was empty.
# Defines push(prefix, levels, wake, priority, message, cap, head).
PUSH = REGISTER_LEVEL + """
local function push(prefix, levels, wake, priority, message, cap, head)
  local list = prefix .. 'q:' .. priority
  local n
  if head then n = redis.call('LPUSH', list, message)
  else n = redis.call('RPUSH', list, message) end
  if n == 1 then register(levels, wake, priority, cap) end
end
"""

# KEYS levels, wake. ARGV key prefix, wake cap, then runs of messages of one priority:
# the priority, the count, that many messages. A run is one RPUSH per 1,000 messages
# (Lua's stack bounds unpack); its list was empty before it when the last RPUSH returns
# the run's length.
ENQUEUE = PUSH + """
local i, total = 3, 0
while i <= #ARGV do
  local priority, count = ARGV[i], tonumber(ARGV[i + 1])
  local list, last, n = ARGV[1] .. 'q:' .. priority, i + 1 + count, 0
  for first = i + 2, last, 1000 do
    n = redis.call('RPUSH', list, unpack(ARGV, first, math.min(first + 999, last)))
  end
  if n == count then register(KEYS[1], KEYS[2], priority, ARGV[2]) end
  i, total = last + 1, total + count
end
return total
"""

# Priority 0, the common case, is enqueued by a plain RPUSH (``REGISTER`` indexes its level
# and wakes a worker afterwards, when the list was empty), so its list is read whether
# or not the index lists it yet.
# Defines first_level(prefix, levels) and all_levels(prefix, levels): the levels to read,
# highest priority first.
LEVELS = """
local function first_level(prefix, levels)
  local level = redis.call('ZRANGE', levels, 0, 0)[1]
  if (not level or tonumber(level) < 0) and redis.call('EXISTS', prefix .. 'q:0') == 1 then
    return '0'
  end
  return level
end
local function all_levels(prefix, levels)
  local out, zero = {}, redis.call('EXISTS', prefix .. 'q:0') == 1
  for _, level in ipairs(redis.call('ZRANGE', levels, 0, -1)) do
    if zero and tonumber(level) <= 0 then out[#out + 1] = '0'; zero = false end
    if level ~= '0' then out[#out + 1] = level end
  end
  if zero then out[#out + 1] = '0' end
  return out
end
"""

# Defines pop(prefix, levels, limit): up to limit messages in queue order, and the list
# the last one came from. A level whose list ran dry is dropped from the index.
POP = LEVELS + """
local function pop(prefix, levels, limit)
  local out, list = {}, nil
  while #out < limit do
    local level = first_level(prefix, levels)
    if not level then return out, nil end
    list = prefix .. 'q:' .. level
    local want = limit - #out
    local got = redis.call('LPOP', list, want)
    if got then for i = 1, #got do out[#out + 1] = got[i] end end
    if not got or #got < want then redis.call('ZREM', levels, level) end
  end
  return out, list
end
"""

# KEYS levels, wake. ARGV wake cap. After a plain RPUSH found priority 0's list empty:
# index the level and leave a wake-up token.
REGISTER = REGISTER_LEVEL + """
register(KEYS[1], KEYS[2], '0', ARGV[1])
"""

# KEYS levels, inflight, leases, wake, counter ('' = none).
# ARGV key prefix, owner, lease_until, limit, n releases, the releases, then limit tokens.
# Returns false, or {message..., counter value}. When messages remain and no wake-up
# token is waiting, leaves one, so that an idle worker joins in.
CLAIM = POP + """
local nrel = tonumber(ARGV[5])
if nrel > 0 then redis.call('HDEL', KEYS[2], unpack(ARGV, 6, 5 + nrel)) end
local out, list = pop(ARGV[1], KEYS[1], tonumber(ARGV[4]))
if #out == 0 then return false end
local fields, t = {}, 5 + nrel
for i = 1, #out do
  fields[2 * i - 1] = ARGV[t + i]
  fields[2 * i] = ARGV[2] .. '\\n' .. out[i]
end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
if KEYS[5] ~= '' then out[#out + 1] = redis.call('GET', KEYS[5]) or '0'
else out[#out + 1] = false end
if list and redis.call('EXISTS', list) == 1 and redis.call('LLEN', KEYS[4]) == 0 then
  redis.call('RPUSH', KEYS[4], '1')
end
return out
"""

# KEYS levels. ARGV key prefix. The first message, or false.
DEQUEUE = POP + """
local out = pop(ARGV[1], KEYS[1], 1)
return out[1] or false
"""

# KEYS levels. ARGV key prefix, limit (-1 = all). The queued messages in queue order.
QUEUED = LEVELS + """
local out, limit = {}, tonumber(ARGV[2])
for _, level in ipairs(all_levels(ARGV[1], KEYS[1])) do
  local stop = -1
  if limit >= 0 then
    if #out >= limit then break end
    stop = limit - #out - 1
  end
  for _, m in ipairs(redis.call('LRANGE', ARGV[1] .. 'q:' .. level, 0, stop)) do
    out[#out + 1] = m
  end
end
return out
"""

# KEYS levels. ARGV key prefix. How many messages are queued.
QUEUE_SIZE = LEVELS + """
local n = 0
for _, level in ipairs(all_levels(ARGV[1], KEYS[1])) do
  n = n + redis.call('LLEN', ARGV[1] .. 'q:' .. level)
end
return n
"""

# KEYS levels, wake. ARGV key prefix. Removes every queued message.
FLUSH_QUEUE = LEVELS + """
for _, level in ipairs(all_levels(ARGV[1], KEYS[1])) do
  redis.call('DEL', ARGV[1] .. 'q:' .. level)
end
redis.call('DEL', KEYS[1], KEYS[2])
"""

# KEYS schedule, seq. ARGV ts, message.
SCHEDULE = """
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], ARGV[1], struct.pack('>I8', seq) .. ARGV[2])
"""

# KEYS schedule. ARGV ts.
READ_SCHEDULE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #due > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1]) end
return due
"""

# KEYS value key, results index, waiter count, notify list.
# ARGV key, value, ttl ms ('' = none), '1' = NX.
# Wakes every reader registered by WAIT (one token each on the notify list).
PUT = """
local ttl = tonumber(ARGV[3])
local set = {'SET', KEYS[1], ARGV[2]}
if ttl then set[#set + 1] = 'PX'; set[#set + 1] = ARGV[3] end
if ARGV[4] == '1' then set[#set + 1] = 'NX' end
if not redis.call(unpack(set)) then return 0 end
if ttl then
  local t = redis.call('TIME')
  local now = t[1] * 1000 + math.floor(t[2] / 1000)
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. now)
else
  redis.call('ZADD', KEYS[2], '+inf', ARGV[1])
end
local waiting = tonumber(redis.call('GET', KEYS[3]) or '0')
if waiting > 0 then
  for i = 1, waiting do redis.call('RPUSH', KEYS[4], '1') end
  redis.call('PEXPIRE', KEYS[4], 60000)
  redis.call('DEL', KEYS[3])
end
return 1
"""

# KEYS value key, waiter count. ARGV registration ttl ms.
# 1 when the value is there; else registers one waiter for PUT to wake, and 0.
WAIT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 0
"""

# KEYS value key, results index. ARGV key.
POP_VALUE = """
local value = redis.call('GET', KEYS[1])
if value then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
return value
"""

# KEYS results index.
RESULT_COUNT = SERVER_NOW_MS + """
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""

# KEYS results index. ARGV value key prefix.
RESULT_ITEMS = SERVER_NOW_MS + """
local out = {}
for _, key in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')) do
  local value = redis.call('GET', ARGV[1] .. key)
  if value then out[#out + 1] = key; out[#out + 1] = value end
end
return out
"""

# KEYS counter. ARGV amount, ttl ms ('' = none).
INCR = """
local existed = redis.call('EXISTS', KEYS[1])
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return value
"""

# In-flight records: inflight HASH token -> owner .. "\n" .. message; leases ZSET
# owner -> lease end, one lease per owner covering each record it holds.

# KEYS inflight, leases. ARGV owner, lease_until. How many records the owner holds; an
# owner holding none loses its lease entry.
RENEW = """
local prefix, n = ARGV[1] .. '\\n', 0
local flat = redis.call('HGETALL', KEYS[1])
for i = 2, #flat, 2 do
  if string.sub(flat[i], 1, #prefix) == prefix then n = n + 1 end
end
if n > 0 then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
else redis.call('ZREM', KEYS[2], ARGV[1]) end
return n
"""

# KEYS inflight. ARGV token.
RELEASE = """
return redis.call('HDEL', KEYS[1], ARGV[1])
"""

# KEYS inflight, leases. ARGV now. Every record as {token, owner, lease, message}...;
# lease entries of owners that hold nothing and whose lease ended before now are dropped.
LIST_IN_FLIGHT = """
local leases, held, out = {}, {}, {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local cut = string.find(flat[i + 1], '\\n', 1, true)
  local owner = string.sub(flat[i + 1], 1, cut - 1)
  if leases[owner] == nil then
    leases[owner] = tonumber(redis.call('ZSCORE', KEYS[2], owner) or '0')
  end
  held[owner] = true
  for _, v in ipairs({flat[i], owner, tostring(leases[owner]),
                      string.sub(flat[i + 1], cut + 1)}) do out[#out + 1] = v end
end
for _, owner in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1])) do
  if not held[owner] then redis.call('ZREM', KEYS[2], owner) end
end
return out
"""

# KEYS schedule, levels, wake. ARGV schedule member, message ('' = drop only), priority,
# wake cap, key prefix. 1 when the member was moved, 0 when it was already gone.
MOVE_TO_QUEUE = PUSH + """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
if ARGV[2] ~= '' then push(ARGV[5], KEYS[2], KEYS[3], ARGV[3], ARGV[2], ARGV[4]) end
return 1
"""

# KEYS inflight, leases. ARGV token, expected owner, owner, lease_until.
# The message as adopted, or false.
ADOPT = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return false end
local cut = string.find(v, '\\n', 1, true)
if string.sub(v, 1, cut - 1) ~= ARGV[2] then return false end
local data = string.sub(v, cut + 1)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3] .. '\\n' .. data)
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
return data
"""

# KEYS inflight, levels, wake. ARGV token, message, priority, wake cap, key prefix,
# '1' = at the head of its priority.
REQUEUE_IN_FLIGHT = PUSH + """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
push(ARGV[5], KEYS[2], KEYS[3], ARGV[3], ARGV[2], ARGV[4], ARGV[6] == '1')
return 1
"""
