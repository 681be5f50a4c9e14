-- tshark listener for tests/flow/oracle_test.py: what each frame contributed to tshark's
-- conversation tables, in the order tshark's taps saw it, so that the test can rebuild the
-- oracle rows of ../shared/pcaps/oracle (the same taps as its tools/conv_exact.lua) and know,
-- for every counted frame, its outermost IP layer's length and whether it is a fragment.
--
-- Output, tab separated, one line per tap call (taps of one frame run in dissection order, so
-- an "I" line before a "T" line of the same frame is the IP layer that carries it):
--   F  frame  frame_len  src  dst  proto  id  offset  ip_len  ip_offset  ipv6_ext  protocols
--   I  frame  version  src  dst  ip_len  offset
--   T  frame  proto  src  sport  dst  dport  stream   (tcp/udp: tshark's stream index; sctp: -)
-- "F" comes from the frame tap. When the frame holds an IP fragment (IPv4 MF or a non-zero
-- offset, an IPv6 fragment header that is not atomic) it gives the addresses, protocol,
-- identification, fragment offset (8-octet units), stated length and header offset (as in
-- "I") of the outermost IP header that says so; "-" in those seven columns otherwise. Then
-- how many IPv6 extension headers the frame has, and tshark's frame.protocols. In "I", ip_len
-- is what the header states (IPv4 total length, IPv6 40 + payload length, 0 when the header
-- says 0) and offset is where the header starts in the frame. Headers quoted in ICMP errors
-- fire no tap. The frame tap runs after the others of its frame.
local f_ip_mf = Field.new("ip.flags.mf")
local f_ip_off = Field.new("ip.frag_offset")
local f_ip_src = Field.new("ip.src")
local f_ip_dst = Field.new("ip.dst")
local f_ip_proto = Field.new("ip.proto")
local f_ip_id = Field.new("ip.id")
local f_ip_len = Field.new("ip.len")
local f_ip6_fid = Field.new("ipv6.fraghdr.ident")
local f_ip6_src = Field.new("ipv6.src")
local f_ip6_dst = Field.new("ipv6.dst")
local f_ip6_plen = Field.new("ipv6.plen")
local f_ip6_fo = Field.new("ipv6.fraghdr.offset")
local f_ip6_fm = Field.new("ipv6.fraghdr.more")
local f_ip6_fnxt = Field.new("ipv6.fraghdr.nxt")
local f_ip_ver = Field.new("ip.version")
local f_ip6_ver = Field.new("ipv6.version")
local f_ip6_ext = {Field.new("ipv6.hopopts"), Field.new("ipv6.routing"),
                   Field.new("ipv6.fraghdr"), Field.new("ipv6.dstopts")}
local f_protocols = Field.new("frame.protocols")
local f_sctp_sp = Field.new("sctp.srcport")
local f_sctp_dp = Field.new("sctp.dstport")

local cur_frame, idx4, idx6, idxsctp, lastsrc, lastdst = -1, 0, 0, 0, "?", "?"
local function newframe(pinfo)
  if pinfo.number ~= cur_frame then
    cur_frame = pinfo.number; idx4 = 0; idx6 = 0; idxsctp = 0; lastsrc = "?"; lastdst = "?"
  end
end
local function emit(...)
  local parts = {}
  for i, v in ipairs({...}) do parts[i] = tostring(v) end
  print(table.concat(parts, "\t"))
end
local function nth_info(extractor, i)
  local all = { extractor() }
  return all[i]
end
local function nth(extractor, i)
  local fi = nth_info(extractor, i)
  return fi and fi.value
end

local lframe = Listener.new("frame")
function lframe.packet(pinfo, tvb, t)
  newframe(pinfo)
  local frag = { "-", "-", "-", "-", "-", "-", "-" }
  local mf, off = { f_ip_mf() }, { f_ip_off() }
  for i = 1, #mf do
    local o = off[i] and off[i].value or 0
    if mf[i].value or o ~= 0 then
      local ver = nth_info(f_ip_ver, i)
      frag = { nth(f_ip_src, i), nth(f_ip_dst, i), nth(f_ip_proto, i), nth(f_ip_id, i), o,
               nth(f_ip_len, i), ver and ver.offset or "?" }
      break
    end
  end
  if frag[1] == "-" then
    local fo, fm = { f_ip6_fo() }, { f_ip6_fm() }
    for i = 1, #fo do
      if fo[i].value ~= 0 or (fm[i] and fm[i].value) then
        local plen, ver = nth(f_ip6_plen, 1), nth_info(f_ip6_ver, 1)
        frag = { nth(f_ip6_src, 1), nth(f_ip6_dst, 1), nth(f_ip6_fnxt, i), nth(f_ip6_fid, i),
                 fo[i].value, plen == 0 and 0 or 40 + plen, ver and ver.offset or "?" }
        break
      end
    end
  end
  local ext = 0
  for _, f in ipairs(f_ip6_ext) do ext = ext + #{ f() } end
  emit("F", pinfo.number, pinfo.len, frag[1], frag[2], frag[3], frag[4], frag[5], frag[6],
       frag[7], ext, tostring(nth(f_protocols, 1)))
end

local lip = Listener.new("ip")
function lip.packet(pinfo, tvb, t)
  newframe(pinfo)
  idx4 = idx4 + 1
  lastsrc = tostring(t.ip_src); lastdst = tostring(t.ip_dst)
  local ver = nth_info(f_ip_ver, idx4)
  emit("I", pinfo.number, 4, lastsrc, lastdst, t.ip_len, ver and ver.offset or "?")
end

local lip6 = Listener.new("ipv6")
function lip6.packet(pinfo, tvb, t)
  newframe(pinfo)
  idx6 = idx6 + 1
  local src, dst, plen = nth(f_ip6_src, idx6), nth(f_ip6_dst, idx6), nth(f_ip6_plen, idx6)
  lastsrc = src and tostring(src) or "?"; lastdst = dst and tostring(dst) or "?"
  local ver = nth_info(f_ip6_ver, idx6)
  emit("I", pinfo.number, 6, lastsrc, lastdst, plen == nil and "?" or plen == 0 and 0 or 40 + plen,
       ver and ver.offset or "?")
end

local ltcp = Listener.new("tcp")
function ltcp.packet(pinfo, tvb, t)
  newframe(pinfo)
  emit("T", pinfo.number, "tcp", tostring(t.ip_src), t.th_sport, tostring(t.ip_dst), t.th_dport,
       tostring(t.th_stream))
end

local ludp = Listener.new("udp")
function ludp.packet(pinfo, tvb, t)
  newframe(pinfo)
  emit("T", pinfo.number, "udp", tostring(t.ip_src), t.uh_sport, tostring(t.ip_dst), t.uh_dport,
       tostring(t.uh_stream))
end

local lsctp = Listener.new("sctp")
function lsctp.packet(pinfo, tvb, t)
  newframe(pinfo)
  idxsctp = idxsctp + 1
  local sp, dp = nth(f_sctp_sp, idxsctp), nth(f_sctp_dp, idxsctp)
  emit("T", pinfo.number, "sctp", lastsrc, sp and tostring(sp) or "?", lastdst,
       dp and tostring(dp) or "?", "-")
end
