/*
 * query/output.c — writing an mk_qresult as InfluxDB 1.x /query JSON
 * (plain, pretty or chunked), as InfluxDB's CSV, or as the influx CLI's
 * aligned columns; and request-level errors as {"error":"..."}.
 *
 * Everything goes through one 64 KiB buffer (ob) handed to the caller's
 * mk_qout_fn whenever it fills: no output is ever built whole in memory,
 * whatever the answer's size. Invariant: ob.len <= OB_CAP; a value is
 * appended only after ob_room() made space for its longest form.
 *
 * Exactness, after InfluxDB 1.x's Go code (services/httpd, query/emitter):
 *  - JSON is what encoding/json makes of InfluxDB's Response: keys in the
 *    order statement_id, series, partial, error; name, tags, columns,
 *    values, partial; empty ones left out; "<", ">", "&", U+2028 and U+2029
 *    escaped as \u003c...; invalid UTF-8 as \ufffd; pretty output is
 *    MarshalIndent with four spaces.
 *  - Floats are the shortest decimal that reads back as the same double
 *    (Schubfach, below), written as Go writes them: JSON switches to
 *    exponent form outside [1e-6, 1e21) ("1e+21", "1e-7"); CSV never does
 *    (strconv 'f', -1). NaN and infinities are null in JSON (Go refuses to
 *    encode them), "NaN"/"+Inf"/"-Inf" in CSV.
 *  - Times are RFC 3339 with the fraction trimmed (time.RFC3339Nano) when
 *    no epoch is asked for; otherwise ns / unit with Go's truncating
 *    division (handler.go convertToEpoch: -1500 ms is -1 s, not -2 s).
 *    "u", "us" and "µ" are microseconds, "ms", "s", "m", "h"; any other
 *    non-empty epoch (including "ns") is nanoseconds, as in InfluxDB.
 *  - Chunked JSON follows query.Emitter: each document holds one piece of
 *    one series (at most chunk_size rows); "partial":true on the series
 *    when its next rows follow in the next document, and on the result when
 *    anything of the same statement follows.
 *  - CSV is InfluxDB's csvFormatter, the table the influx CLI's column
 *    output; write_csv and write_table say where we differ (a failed
 *    statement is shown, not dropped).
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meerkat/query.h"
#include "util.h"

/* ---- shortest round-trip doubles (Schubfach) -------------------------- */
/*
 * R. Giulietti, "The Schubfach way to render doubles" (2020). For a finite
 * v = c * 2^q with rounding interval R (half-way to both neighbours;
 * closed when c is even, as round-half-even reads it back), let
 * k = floor(log10(width of R)). R is at least 10^k wide and narrower than
 * 10^(k+1), so the shortest decimal in R is the one multiple of 10^(k+1)
 * inside R if there is one, else s*10^k or (s+1)*10^k with
 * s = floor(v / 10^k) -- whichever is in R, the nearer to v when both are
 * (ties to even). All comparisons are done in units of 10^k / 4 on
 * v * 10^-k computed with a 126-bit approximation g of 10^-k, rounded to
 * odd, which the paper proves keeps every comparison exact.
 *
 * Unlike Java's Double.toString we do not ask for at least two digits, so
 * 5e-324 comes out as "5e-324", as Go prints it.
 */

/* G[n + 292] = floor(10^n * 2^(125 - floor(log2(10^n)))) + 1, n = -292..324:
 * the 126-bit g as {high 64 bits, low 64 bits}. Computed exactly with
 * rational arithmetic (Python fractions: math.floor(Fraction(10)**n *
 * Fraction(2)**(125 - e)) + 1). */
static const uint64_t G[617][2] = {
    {0x3fddec7f2faf3713u, 0xc97a3a2704eec3dfu}, /* 10^-292 */
    {0x27eab3cf7dcd826cu, 0x5dec645863153a6cu}, /* 10^-291 */
    {0x31e560c35d40e307u, 0x75677d6e7bda8906u}, /* 10^-290 */
    {0x3e5eb8f434911bc9u, 0x52c15cca1ad12b48u}, /* 10^-289 */
    {0x26fb3398a0dab15du, 0xd3b8d9fe50c2bb0du}, /* 10^-288 */
    {0x30ba007ec9115db5u, 0x48a7107de4f369d0u}, /* 10^-287 */
    {0x3ce8809e7b55b522u, 0x9ad0d49d5e304444u}, /* 10^-286 */
    {0x261150630d159135u, 0xa0c284e25ade2aabu}, /* 10^-285 */
    {0x2f95a47bd05af583u, 0x08f3261af195b555u}, /* 10^-284 */
    {0x3b7b0d9ac471b2e3u, 0xcb2fefa1adfb22abu}, /* 10^-283 */
    {0x252ce880bac70fceu, 0x5efdf5c50cbcf5abu}, /* 10^-282 */
    {0x2e7822a0e978d3c1u, 0xf6bd73364fec3315u}, /* 10^-281 */
    {0x3a162b4923d708b2u, 0x746cd003e3e73fdbu}, /* 10^-280 */
    {0x244ddb0db666656fu, 0x88c402026e7087e9u}, /* 10^-279 */
    {0x2d6151d123fffecbu, 0x6af502830a0ca9e3u}, /* 10^-278 */
    {0x38b9a6456cfffe7eu, 0x45b24323cc8fd45cu}, /* 10^-277 */
    {0x237407eb641fff0eu, 0xeb8f69f65fd9e4b9u}, /* 10^-276 */
    {0x2c5109e63d27fed2u, 0xa6734473f7d05de8u}, /* 10^-275 */
    {0x37654c5fcc71fe87u, 0x50101590f5c47561u}, /* 10^-274 */
    {0x229f4fbbdfc73f14u, 0x920a0d7a999ac95du}, /* 10^-273 */
    {0x2b4723aad7b90ed9u, 0xb68c90d940017bb4u}, /* 10^-272 */
    {0x3618ec958da75290u, 0x242fb50f9001daa1u}, /* 10^-271 */
    {0x21cf93dd7888939au, 0x169dd129ba0128a5u}, /* 10^-270 */
    {0x2a4378d4d6aab880u, 0x9c454574288172ceu}, /* 10^-269 */
    {0x34d4570a0c5566a0u, 0xc35696d132a1cf81u}, /* 10^-268 */
    {0x2104b66647b56024u, 0x7a161e42bfa521b1u}, /* 10^-267 */
    {0x2945e3ffd9a2b82du, 0x989ba5d36f8e6a1du}, /* 10^-266 */
    {0x33975cffd00b6638u, 0xfec28f484b7204a4u}, /* 10^-265 */
    {0x203e9a1fe2071fe3u, 0x9f39998d2f2742e7u}, /* 10^-264 */
    {0x284e40a7da88e7dcu, 0x8707fff07af113a1u}, /* 10^-263 */
    {0x3261d0d1d12b21d3u, 0xa8c9ffec99ad5889u}, /* 10^-262 */
    {0x3efa45064575ea48u, 0x92fc7fe7c018aeabu}, /* 10^-261 */
    {0x275c6b23eb69b26du, 0x5bddcff0d80f6d2bu}, /* 10^-260 */
    {0x313385ece6441f08u, 0xb2d543ed0e134875u}, /* 10^-259 */
    {0x3d8067681fd526cau, 0xdf8a94e851981a93u}, /* 10^-258 */
    {0x267040a113e5383eu, 0xcbb69d1132ff109cu}, /* 10^-257 */
    {0x300c50c958de864eu, 0x7ea444557fbed4c3u}, /* 10^-256 */
    {0x3c0f64fbaf1627e2u, 0x1e4d556adfae89f3u}, /* 10^-255 */
    {0x25899f1d4d6dd8edu, 0x52f05562cbcd1638u}, /* 10^-254 */
    {0x2eec06e4a0c94f28u, 0xa7ac6abb7ec05bc6u}, /* 10^-253 */
    {0x3aa7089dc8fba2f2u, 0xd197856a5e7072b8u}, /* 10^-252 */
    {0x24a865629d9d45d7u, 0xc2feb3627b0647b3u}, /* 10^-251 */
    {0x2dd27ebb4504974du, 0xb3be603b19c7d99fu}, /* 10^-250 */
    {0x39471e6a1645bd21u, 0x20adf849e039d007u}, /* 10^-249 */
    {0x23cc73024deb9634u, 0xb46cbb2e2c242205u}, /* 10^-248 */
    {0x2cbf8fc2e1667bc1u, 0xe187e9f9b72d2a86u}, /* 10^-247 */
    {0x37ef73b399c01ab2u, 0x59e9e47824f87527u}, /* 10^-246 */
    {0x22f5a850401810afu, 0x78322ecb171b4939u}, /* 10^-245 */
    {0x2bb31264501e14dbu, 0x563eba7ddce21b87u}, /* 10^-244 */
    {0x369fd6fd64259a12u, 0x2bce691d541aa268u}, /* 10^-243 */
    {0x2223e65e5e97804bu, 0x5b6101b25490a581u}, /* 10^-242 */
    {0x2aacdff5f63d605eu, 0x3239421ee9b4cee1u}, /* 10^-241 */
    {0x355817f373ccb875u, 0xbec792a6a422029au}, /* 10^-240 */
    {0x21570ef8285ff349u, 0x973cbba8269541a0u}, /* 10^-239 */
    {0x29acd2b63277f01bu, 0xfd0bea92303a9208u}, /* 10^-238 */
    {0x34180763bf15ec22u, 0xfc4ee536bc49368au}, /* 10^-237 */
    {0x208f049e576db395u, 0xddb14f4235adc217u}, /* 10^-236 */
    {0x28b2c5c5ed49207bu, 0x551da312c319329cu}, /* 10^-235 */
    {0x32df7737689b689au, 0x2a650bd773df7f43u}, /* 10^-234 */
    {0x3f97550542c242c0u, 0xb4fe4ecd50d75f14u}, /* 10^-233 */
    {0x27be952349b969b8u, 0x711ef14052869b6cu}, /* 10^-232 */
    {0x31ae3a6c1c27c426u, 0x8d66ad9067284247u}, /* 10^-231 */
    {0x3e19c9072331b530u, 0x30c058f480f252d9u}, /* 10^-230 */
    {0x26d01da475ff113eu, 0x1e783798d09773c8u}, /* 10^-229 */
    {0x3084250d937ed58du, 0xa616457f04bd50bau}, /* 10^-228 */
    {0x3ca52e50f85e8af1u, 0x0f9bd6dec5eca4e8u}, /* 10^-227 */
    {0x25e73cf29b3b16d6u, 0xa9c1664b3bb3e711u}, /* 10^-226 */
    {0x2f610c2f4209dc8cu, 0x5431bfde0aa0e0d5u}, /* 10^-225 */
    {0x3b394f3b128c53afu, 0x693e2fd58d49190bu}, /* 10^-224 */
    {0x2503d184eb97b44du, 0xa1c6dde5784dafa7u}, /* 10^-223 */
    {0x2e44c5e6267da161u, 0x0a38955ed6611b90u}, /* 10^-222 */
    {0x39d5f75fb01d09b9u, 0x4cc6bab68bf96274u}, /* 10^-221 */
    {0x2425ba9bce122613u, 0xcffc34b2177bdd89u}, /* 10^-220 */
    {0x2d2f2942c196af98u, 0xc3fb41de9d5ad4ebu}, /* 10^-219 */
    {0x387af39371fc5b7eu, 0xf4fa125644b18a26u}, /* 10^-218 */
    {0x234cd83c273db92fu, 0x591c4b75eaeef658u}, /* 10^-217 */
    {0x2c200e4b310d277bu, 0x2f635e5365aab3edu}, /* 10^-216 */
    {0x372811ddfd507159u, 0xfb3c35e83f1560e9u}, /* 10^-215 */
    {0x22790b2abe5246d8u, 0x3d05a1b1276d5c92u}, /* 10^-214 */
    {0x2b174df56de6d88eu, 0x4c470a1d7148b3b6u}, /* 10^-213 */
    {0x35dd2172c9608eb1u, 0xdf58cca4cd9ae0a3u}, /* 10^-212 */
    {0x21aa34e7bddc592fu, 0x2b977fe70080cc66u}, /* 10^-211 */
    {0x2a14c221ad536f7au, 0xf67d5fe0c0a0ff80u}, /* 10^-210 */
    {0x3499f2aa18a84b59u, 0xb41cb7d8f0c93f5fu}, /* 10^-209 */
    {0x20e037aa4f692f18u, 0x1091f2e7967dc79cu}, /* 10^-208 */
    {0x29184594e3437adeu, 0x14b66fa17c1d3983u}, /* 10^-207 */
    {0x335e56fa1c145995u, 0x99e40b89db2487e3u}, /* 10^-206 */
    {0x201af65c518cb7fdu, 0x802e873628f6d4eeu}, /* 10^-205 */
    {0x2821b3f365efe5fcu, 0xe03a2903b3348a2au}, /* 10^-204 */
    {0x322a20f03f6bdf7cu, 0x1848b344a001acb4u}, /* 10^-203 */
    {0x3eb4a92c4f46d75bu, 0x1e5ae015c80217e1u}, /* 10^-202 */
    {0x2730e9bbb18c4698u, 0xf2f8cc0d9d014eedu}, /* 10^-201 */
    {0x30fd242a9def583fu, 0x2fb6ff110441a2a8u}, /* 10^-200 */
    {0x3d3c6d35456b2e4eu, 0xfba4bed545520b52u}, /* 10^-199 */
    {0x2645c4414b62fcf1u, 0x5d46f7454b534713u}, /* 10^-198 */
    {0x2fd735519e3bbc2du, 0xb498b5169e2818d8u}, /* 10^-197 */
    {0x3bcd02a605caab39u, 0x21bee25c45b21f0eu}, /* 10^-196 */
    {0x256021a7c39eab03u, 0xb5174d79ab8f5369u}, /* 10^-195 */
    {0x2eb82a11b48655c4u, 0xa25d20d816732843u}, /* 10^-194 */
    {0x3a66349621a7eb35u, 0xcaf4690e1c0ff253u}, /* 10^-193 */
    {0x247fe0ddd508f301u, 0x9ed8c1a8d189f774u}, /* 10^-192 */
    {0x2d9fd9154a4b2fc2u, 0x068ef21305ec7551u}, /* 10^-191 */
    {0x3907cf5a9cddfbb2u, 0x8832ae97c76792a5u}, /* 10^-190 */
    {0x23a4e198a20abd4fu, 0x951fad1edca0bba8u}, /* 10^-189 */
    {0x2c8e19feca8d6ca3u, 0x7a67986693c8ea91u}, /* 10^-188 */
    {0x37b1a07e7d30c7ccu, 0x59017e8038bb2536u}, /* 10^-187 */
    {0x22cf044f0e3e7cdfu, 0xb7a0ef102374f742u}, /* 10^-186 */
    {0x2b82c562d1ce1c17u, 0xa5892ad42c523512u}, /* 10^-185 */
    {0x366376bb8641a31du, 0x8eeb75893766c256u}, /* 10^-184 */
    {0x21fe2a3533e905f2u, 0x79532975c2a03976u}, /* 10^-183 */
    {0x2a7db4c280e3476fu, 0x17a7f3d3334847d4u}, /* 10^-182 */
    {0x351d21f3211c194au, 0xdd91f0c8001a59c8u}, /* 10^-181 */
    {0x21323537f4b18fceu, 0xca7b367d0010781du}, /* 10^-180 */
    {0x297ec285f1ddf3c2u, 0x7d1a041c40149625u}, /* 10^-179 */
    {0x33de73276e5570b3u, 0x1c6085235019bbaeu}, /* 10^-178 */
    {0x206b07f8a4f5666fu, 0xf1bc53361210154du}, /* 10^-177 */
    {0x2885c9f6ce32c00bu, 0xee2b680396941aa0u}, /* 10^-176 */
    {0x32a73c7481bf700eu, 0xe9b642047c392148u}, /* 10^-175 */
    {0x3f510b91a22f4c12u, 0xa423d2859b476999u}, /* 10^-174 */
    {0x2792a73b055d8f8bu, 0xa6966393810ca200u}, /* 10^-173 */
    {0x31775109c6b4f36eu, 0x903bfc78614fca80u}, /* 10^-172 */
    {0x3dd5254c3862304au, 0x344afb9679a3bd20u}, /* 10^-171 */
    {0x26a5374fa33d5e2eu, 0x60aedd3e0c065634u}, /* 10^-170 */
    {0x304e85238c0cb5b9u, 0xf8da948d8f07ebc1u}, /* 10^-169 */
    {0x3c62266c6f0fe328u, 0x771139b0f2c9e6b1u}, /* 10^-168 */
    {0x25bd5803c569edf9u, 0x4a6ac40e97be302fu}, /* 10^-167 */
    {0x2f2cae04b6c46977u, 0x9d0575123dadbc3au}, /* 10^-166 */
    {0x3af7d985e47583d5u, 0x8446d256cd192b49u}, /* 10^-165 */
    {0x24dae7f3aec97265u, 0x72ac4376402fbb0eu}, /* 10^-164 */
    {0x2e11a1f09a7bcefeu, 0xcf575453d03ba9d1u}, /* 10^-163 */
    {0x39960a6cc11ac2beu, 0x832d2968c44a9445u}, /* 10^-162 */
    {0x23fdc683f8b0b9b7u, 0x11fc39e17aae9cabu}, /* 10^-161 */
    {0x2cfd3824f6dce824u, 0xd67b4859d95a43d6u}, /* 10^-160 */
    {0x383c862e3494222eu, 0x0c1a1a704fb0d4ccu}, /* 10^-159 */
    {0x2325d3dce0dc955cu, 0xc790508631ce84ffu}, /* 10^-158 */
    {0x2bef48d41913bab3u, 0xf97464a7be42263fu}, /* 10^-157 */
    {0x36eb1b091f58a960u, 0xf7d17dd1add2afcfu}, /* 10^-156 */
    {0x2252f0e5b39769dcu, 0x9ae2eea30ca3ade1u}, /* 10^-155 */
    {0x2ae7ad1f207d4453u, 0xc19baa4bcfcc995au}, /* 10^-154 */
    {0x35a19866e89c9568u, 0xb20294dec3bfbfb0u}, /* 10^-153 */
    {0x2184ff405161dd61u, 0x6f419d0b3a57d7ceu}, /* 10^-152 */
    {0x29e63f1065ba54b9u, 0xcb12044e08edcdc2u}, /* 10^-151 */
    {0x345fced47f28e9e8u, 0x3dd685618b294132u}, /* 10^-150 */
    {0x20bbe144cf799231u, 0x26a6135cf6f9c8bfu}, /* 10^-149 */
    {0x28ead9960357f6bdu, 0x704f983434b83aefu}, /* 10^-148 */
    {0x33258ffb842df46cu, 0xcc637e4141e649abu}, /* 10^-147 */
    {0x3feef3fa65397187u, 0xff7c5dd1925fdc15u}, /* 10^-146 */
    {0x27f5587c7f43e6f4u, 0xffadbaa2fb7be98du}, /* 10^-145 */
    {0x31f2ae9b9f14e0b2u, 0x3f99294bba5ae3f1u}, /* 10^-144 */
    {0x3e6f5a4286da18deu, 0xcf7f739ea8f19cedu}, /* 10^-143 */
    {0x2705986994484f8bu, 0x41afa84329970214u}, /* 10^-142 */
    {0x30c6fe83f95a636eu, 0x121b9253f3fcc299u}, /* 10^-141 */
    {0x3cf8be24f7b0fc49u, 0x96a276e8f0fbf33fu}, /* 10^-140 */
    {0x261b76d71ace9dadu, 0xfe258a51969d7808u}, /* 10^-139 */
    {0x2fa2548ce1824519u, 0x7daeece5fc44d609u}, /* 10^-138 */
    {0x3b8ae9b019e2d65fu, 0xdd1aa81f7b560b8cu}, /* 10^-137 */
    {0x2536d20e102dc5fbu, 0xea30a913ad15c738u}, /* 10^-136 */
    {0x2e8486919439377au, 0xe4bcd358985b3905u}, /* 10^-135 */
    {0x3a25a835f9478559u, 0x9dec082ebe720746u}, /* 10^-134 */
    {0x24578921bbccb358u, 0x02b3851d3707448cu}, /* 10^-133 */
    {0x2d6d6b6a2abfe02eu, 0x0360666484c915afu}, /* 10^-132 */
    {0x38c8c644b56fd839u, 0x84387ffda5fb5b1bu}, /* 10^-131 */
    {0x237d7beaf165e723u, 0xf2a34ffe87bd18f1u}, /* 10^-130 */
    {0x2c5cdae5adbf60ecu, 0xef4c23fe29ac5f2du}, /* 10^-129 */
    {0x3774119f192f3928u, 0x2b1f2cfdb41776f8u}, /* 10^-128 */
    {0x22a88b036fbd83b9u, 0x1af37c1e908eaa5bu}, /* 10^-127 */
    {0x2b52adc44bace4a7u, 0x61b05b2634b254f2u}, /* 10^-126 */
    {0x362759355e981dd1u, 0x3a1c71efc1deea2eu}, /* 10^-125 */
    {0x21d897c15b1f12a2u, 0xc451c735d92b525du}, /* 10^-124 */
    {0x2a4ebdb1b1e6d74bu, 0x756639034f7626f4u}, /* 10^-123 */
    {0x34e26d1e1e608d1eu, 0x52bfc7442353b0b1u}, /* 10^-122 */
    {0x210d8432d2fc5832u, 0xf3b7dc8a96144e6fu}, /* 10^-121 */
    {0x2950e53f87bb6e3fu, 0xb0a5d3ad3b99620bu}, /* 10^-120 */
    {0x33a51e8f69aa49cfu, 0x9ccf48988a7fba8du}, /* 10^-119 */
    {0x20473319a20a6e21u, 0xc2018d5f568fd498u}, /* 10^-118 */
    {0x2858ffe00a8d09aau, 0x3281f0b72c33c9beu}, /* 10^-117 */
    {0x326f3fd80d304c14u, 0xbf226ce4f740bc2eu}, /* 10^-116 */
    {0x3f0b0fce107c5f19u, 0xeeeb081e3510eb39u}, /* 10^-115 */
    {0x2766e9e0ca4dbb70u, 0x3552e512e12a9304u}, /* 10^-114 */
    {0x3140a458fce12a4cu, 0x42a79e57997537c5u}, /* 10^-113 */
    {0x3d90cd6f3c1974dfu, 0x535185ed7fd285b6u}, /* 10^-112 */
    {0x267a8065858fe90bu, 0x9412f3b46fe39392u}, /* 10^-111 */
    {0x3019207ee6f3e34eu, 0x7917b0a18bdc7876u}, /* 10^-110 */
    {0x3c1f689ea0b0dc22u, 0x175d9cc9eed39694u}, /* 10^-109 */
    {0x2593a163246e8995u, 0x4e9a81fe35443e1cu}, /* 10^-108 */
    {0x2ef889bbed8a2bfau, 0xa241227dc2954da3u}, /* 10^-107 */
    {0x3ab6ac2ae8ecb6f9u, 0x4ad16b1d333aa10cu}, /* 10^-106 */
    {0x24b22b9ad193f25bu, 0xcec2e2f24004a4a8u}, /* 10^-105 */
    {0x2ddeb68185f8eef2u, 0xc2739baed005cdd2u}, /* 10^-104 */
    {0x39566421e7772aafu, 0x7310829a84074146u}, /* 10^-103 */
    {0x23d5fe9530aa7aadu, 0xa7ea51a0928488ccu}, /* 10^-102 */
    {0x2ccb7e3a7cd51959u, 0x11e4e608b725aaffu}, /* 10^-101 */
    {0x37fe5dc91c0a5fafu, 0x565e1f8ae4ef15beu}, /* 10^-100 */
    {0x22fefa9db1867bcdu, 0x95fad3b6cf156d97u}, /* 10^-99 */
    {0x2bbeb9451de81ac0u, 0xfb7988a482dac8fdu}, /* 10^-98 */
    {0x36ae679665622171u, 0x3a57eacda3917b3cu}, /* 10^-97 */
    {0x222d00bdff5d54e6u, 0xc476f2c0863aed06u}, /* 10^-96 */
    {0x2ab840ed7f34aa20u, 0x7594af70a7c9a847u}, /* 10^-95 */
    {0x35665128df01d4a8u, 0x92f9db4cd1bc1258u}, /* 10^-94 */
    {0x215ff2b98b6124e9u, 0x5bdc291003158b77u}, /* 10^-93 */
    {0x29b7ef67ee396e23u, 0xb2d3335403daee55u}, /* 10^-92 */
    {0x3425eb41e9c7c9acu, 0x9f88002904d1a9eau}, /* 10^-91 */
    {0x2097b309321cde0bu, 0xe3b50019a3030a33u}, /* 10^-90 */
    {0x28bd9fcb7ea4158eu, 0xdca240200bc3ccbfu}, /* 10^-89 */
    {0x32ed07be5e4d1af2u, 0x93cad0280eb4bfefu}, /* 10^-88 */
    {0x3fa849adf5e061afu, 0x38bd84321261efebu}, /* 10^-87 */
    {0x27c92e0cb9ac3d0du, 0x8376729f4b7d35f3u}, /* 10^-86 */
    {0x31bb798fe8174c50u, 0xe4540f471e5c836fu}, /* 10^-85 */
    {0x3e2a57f3e21d1f65u, 0x1d691318e5f3a44bu}, /* 10^-84 */
    {0x26da76f86d52339fu, 0x3261abef8fb846afu}, /* 10^-83 */
    {0x309114b688a6c086u, 0xfefa16eb73a6585bu}, /* 10^-82 */
    {0x3cb559e42ad070a8u, 0xbeb89ca6508fee71u}, /* 10^-81 */
    {0x25f1582e9ac24669u, 0x773361e7f259f507u}, /* 10^-80 */
    {0x2f6dae3a4172d803u, 0xd5003a61eef07249u}, /* 10^-79 */
    {0x3b4919c8d1cf8e04u, 0xca4048fa6aac8edbu}, /* 10^-78 */
    {0x250db01d8321b8c2u, 0xfe682d9c82abd949u}, /* 10^-77 */
    {0x2e511c24e3ea26f3u, 0xbe023903a356cf9bu}, /* 10^-76 */
    {0x39e5632e1ce4b0b0u, 0xad82c7448c2c8382u}, /* 10^-75 */
    {0x242f5dfcd20eee6eu, 0x6c71bc8ad79bd231u}, /* 10^-74 */
    {0x2d3b357c0692aa0au, 0x078e2bad8d82c6bdu}, /* 10^-73 */
    {0x388a02db0837548cu, 0x8971b698f0e3786du}, /* 10^-72 */
    {0x235641c8e52294d7u, 0xd5e7121f968e2b44u}, /* 10^-71 */
    {0x2c2bd23b1e6b3a0du, 0xcb60d6a77c31b615u}, /* 10^-70 */
    {0x3736c6c9e6060891u, 0x3e390c515b3e239au}, /* 10^-69 */
    {0x22823c3e2fc3c55au, 0xc6e3a7b2d906d640u}, /* 10^-68 */
    {0x2b22cb4dbbb4b6b1u, 0x789c919f8f488bd0u}, /* 10^-67 */
    {0x35eb7e212aa1e45du, 0xd6c3b607731aaec4u}, /* 10^-66 */
    {0x21b32ed4baa52ebau, 0xa63a51c4a7f0ad3bu}, /* 10^-65 */
    {0x2a1ffa89e94e7a69u, 0x4fc8e635d1ecd88au}, /* 10^-64 */
    {0x34a7f92c63a21903u, 0xa3bb1fc346680eacu}, /* 10^-63 */
    {0x20e8fbbbbe454fa2u, 0x4654f3da0c01092cu}, /* 10^-62 */
    {0x29233aaaadd6a38au, 0xd7ea30d08f014b76u}, /* 10^-61 */
    {0x336c0955594c4c6du, 0x8de4bd04b2c19e54u}, /* 10^-60 */
    {0x202385d557cfafc4u, 0x78aef622efb902f5u}, /* 10^-59 */
    {0x282c674aadc39bb5u, 0x96dab3ababa743b2u}, /* 10^-58 */
    {0x3237811d593482a2u, 0xfc9160969691149eu}, /* 10^-57 */
    {0x3ec56164af81a34bu, 0xbbb5b8bc3c3559c5u}, /* 10^-56 */
    {0x273b5cdeedb1060fu, 0x55519375a5a1581bu}, /* 10^-55 */
    {0x310a3416a91d4793u, 0x2aa5f8530f09ae22u}, /* 10^-54 */
    {0x3d4cc11c53649977u, 0xf54f7667d2cc19abu}, /* 10^-53 */
    {0x264ff8b1b41edfeau, 0xf951aa00e3bf900bu}, /* 10^-52 */
    {0x2fe3f6de212697e5u, 0xb7a614811caf740du}, /* 10^-51 */
    {0x3bdcf495a9703ddfu, 0x258f99a163db5111u}, /* 10^-50 */
    {0x256a18dd89e626abu, 0x7779c004de6912abu}, /* 10^-49 */
    {0x2ec49f14ec5fb056u, 0x5558300616035755u}, /* 10^-48 */
    {0x3a75c6da27779c6bu, 0xeaae3c079b842d2au}, /* 10^-47 */
    {0x24899c4858aac1c3u, 0x72ace584c1329c3bu}, /* 10^-46 */
    {0x2dac035a6ed57234u, 0x4f581ee5f17f4349u}, /* 10^-45 */
    {0x391704310a8acec1u, 0x632e269f6ddf141bu}, /* 10^-44 */
    {0x23ae629ea696c138u, 0xddfcd823a4ab6c91u}, /* 10^-43 */
    {0x2c99fb46503c7187u, 0x157c0e2c8dd647b5u}, /* 10^-42 */
    {0x37c07a17e44b8de8u, 0xdadb11b7b14bd9a3u}, /* 10^-41 */
    {0x22d84c4eeeaf38b1u, 0x88c8eb12cecf6806u}, /* 10^-40 */
    {0x2b8e5f62aa5b06ddu, 0xeafb25d782834207u}, /* 10^-39 */
    {0x3671f73b54f1c895u, 0x65b9ef4d63241289u}, /* 10^-38 */
    {0x22073a8515171d5du, 0x5f9435905df68b96u}, /* 10^-37 */
    {0x2a8909265a5ce4b4u, 0xb77942f475742e7bu}, /* 10^-36 */
    {0x352b4b6ff0f41de1u, 0xe55793b192d13a1au}, /* 10^-35 */
    {0x213b0f25f69892adu, 0x2f56bc4efbc2c450u}, /* 10^-34 */
    {0x2989d2ef743eb758u, 0x7b2c6b62bab37564u}, /* 10^-33 */
    {0x33ec47ab514e652eu, 0x99f7863b696052bdu}, /* 10^-32 */
    {0x2073accb12d0ff3du, 0x203ab3e521dc33b6u}, /* 10^-31 */
    {0x289097fdd7853f0cu, 0x684960de6a5340a4u}, /* 10^-30 */
    {0x32b4bdfd4d668ecfu, 0x825bb91604e810cdu}, /* 10^-29 */
    {0x3f61ed7ca0c03283u, 0x62f2a75b86221500u}, /* 10^-28 */
    {0x279d346de4781f92u, 0x1dd7a89933d54d20u}, /* 10^-27 */
    {0x318481895d962776u, 0xa54d92bf80caa068u}, /* 10^-26 */
    {0x3de5a1ebb4fbb154u, 0x4ea0f76f60fd4882u}, /* 10^-25 */
    {0x26af8533511d4ed4u, 0xb1249aa59c9e4d51u}, /* 10^-24 */
    {0x305b66802564a289u, 0xdd6dc14f03c5e0a5u}, /* 10^-23 */
    {0x3c7240202ebdcb2cu, 0x54c931a2c4b758cfu}, /* 10^-22 */
    {0x25c768141d369efbu, 0xb4fdbf05baf29781u}, /* 10^-21 */
    {0x2f394219248446bau, 0xa23d2ec729af3d62u}, /* 10^-20 */
    {0x3b07929f6da55869u, 0x4acc7a78f41b0cbau}, /* 10^-19 */
    {0x24e4bba3a4875741u, 0xcebfcc8b9890e7f4u}, /* 10^-18 */
    {0x2e1dea8c8da92d12u, 0x426fbfae7eb521f1u}, /* 10^-17 */
    {0x39a5652fb1137856u, 0xd30baf9a1e626a6du}, /* 10^-16 */
    {0x24075f3dceac2b36u, 0x43e74dc052fd8285u}, /* 10^-15 */
    {0x2d09370d42573603u, 0xd4e1213067bce326u}, /* 10^-14 */
    {0x384b84d092ed0384u, 0xca19697c81ac1befu}, /* 10^-13 */
    {0x232f33025bd42232u, 0xfe4fe1edd10b9175u}, /* 10^-12 */
    {0x2bfaffc2f2c92abfu, 0xbde3da69454e75d3u}, /* 10^-11 */
    {0x36f9bfb3af7b756fu, 0xad5cd10396a21347u}, /* 10^-10 */
    {0x225c17d04dad2965u, 0xcc5a02a23e254c0du}, /* 10^-9 */
    {0x2af31dc4611873bfu, 0x3f70834acdae9f10u}, /* 10^-8 */
    {0x35afe535795e90afu, 0x0f4ca41d811a46d4u}, /* 10^-7 */
    {0x218def416bdb1a6du, 0x698fe69270b06c44u}, /* 10^-6 */
    {0x29f16b11c6d1e108u, 0xc3f3e0370cdc8755u}, /* 10^-5 */
    {0x346dc5d63886594au, 0xf4f0d844d013a92bu}, /* 10^-4 */
    {0x20c49ba5e353f7ceu, 0xd916872b020c49bbu}, /* 10^-3 */
    {0x28f5c28f5c28f5c2u, 0x8f5c28f5c28f5c29u}, /* 10^-2 */
    {0x3333333333333333u, 0x3333333333333334u}, /* 10^-1 */
    {0x2000000000000000u, 0x0000000000000001u}, /* 10^0 */
    {0x2800000000000000u, 0x0000000000000001u}, /* 10^1 */
    {0x3200000000000000u, 0x0000000000000001u}, /* 10^2 */
    {0x3e80000000000000u, 0x0000000000000001u}, /* 10^3 */
    {0x2710000000000000u, 0x0000000000000001u}, /* 10^4 */
    {0x30d4000000000000u, 0x0000000000000001u}, /* 10^5 */
    {0x3d09000000000000u, 0x0000000000000001u}, /* 10^6 */
    {0x2625a00000000000u, 0x0000000000000001u}, /* 10^7 */
    {0x2faf080000000000u, 0x0000000000000001u}, /* 10^8 */
    {0x3b9aca0000000000u, 0x0000000000000001u}, /* 10^9 */
    {0x2540be4000000000u, 0x0000000000000001u}, /* 10^10 */
    {0x2e90edd000000000u, 0x0000000000000001u}, /* 10^11 */
    {0x3a35294400000000u, 0x0000000000000001u}, /* 10^12 */
    {0x246139ca80000000u, 0x0000000000000001u}, /* 10^13 */
    {0x2d79883d20000000u, 0x0000000000000001u}, /* 10^14 */
    {0x38d7ea4c68000000u, 0x0000000000000001u}, /* 10^15 */
    {0x2386f26fc1000000u, 0x0000000000000001u}, /* 10^16 */
    {0x2c68af0bb1400000u, 0x0000000000000001u}, /* 10^17 */
    {0x3782dace9d900000u, 0x0000000000000001u}, /* 10^18 */
    {0x22b1c8c1227a0000u, 0x0000000000000001u}, /* 10^19 */
    {0x2b5e3af16b188000u, 0x0000000000000001u}, /* 10^20 */
    {0x3635c9adc5dea000u, 0x0000000000000001u}, /* 10^21 */
    {0x21e19e0c9bab2400u, 0x0000000000000001u}, /* 10^22 */
    {0x2a5a058fc295ed00u, 0x0000000000000001u}, /* 10^23 */
    {0x34f086f3b33b6840u, 0x0000000000000001u}, /* 10^24 */
    {0x2116545850052128u, 0x0000000000000001u}, /* 10^25 */
    {0x295be96e64066972u, 0x0000000000000001u}, /* 10^26 */
    {0x33b2e3c9fd0803ceu, 0x8000000000000001u}, /* 10^27 */
    {0x204fce5e3e250261u, 0x1000000000000001u}, /* 10^28 */
    {0x2863c1f5cdae42f9u, 0x5400000000000001u}, /* 10^29 */
    {0x327cb2734119d3b7u, 0xa900000000000001u}, /* 10^30 */
    {0x3f1bdf10116048a5u, 0x9340000000000001u}, /* 10^31 */
    {0x27716b6a0adc2d67u, 0x7c08000000000001u}, /* 10^32 */
    {0x314dc6448d9338c1u, 0x5b0a000000000001u}, /* 10^33 */
    {0x3da137d5b0f806f1u, 0xb1cc800000000001u}, /* 10^34 */
    {0x2684c2e58e9b0457u, 0x0f1fd00000000001u}, /* 10^35 */
    {0x3025f39ef241c56cu, 0xd2e7c40000000001u}, /* 10^36 */
    {0x3c2f7086aed236c8u, 0x07a1b50000000001u}, /* 10^37 */
    {0x259da6542d43623du, 0x04c5112000000001u}, /* 10^38 */
    {0x2f050fe938943accu, 0x45f6556800000001u}, /* 10^39 */
    {0x3ac653e386b9497fu, 0x5773eac200000001u}, /* 10^40 */
    {0x24bbf46e3433cdefu, 0x96a872b940000001u}, /* 10^41 */
    {0x2deaf189c140c16bu, 0x7c528f6790000001u}, /* 10^42 */
    {0x3965adec3190f1c6u, 0x5b67334174000001u}, /* 10^43 */
    {0x23df8cb39efa971bu, 0xf9208008e8800001u}, /* 10^44 */
    {0x2cd76fe086b93ce2u, 0xf768a00b22a00001u}, /* 10^45 */
    {0x380d4bd8a8678c1bu, 0xb542c80deb480001u}, /* 10^46 */
    {0x23084f676940b791u, 0x5149bd08b30d0001u}, /* 10^47 */
    {0x2bca63414390e575u, 0xa59c2c4adfd04001u}, /* 10^48 */
    {0x36bcfc1194751ed3u, 0x0f03375d97c45001u}, /* 10^49 */
    {0x22361d8afcc93343u, 0xe962029a7edab201u}, /* 10^50 */
    {0x2ac3a4edbbfb8014u, 0xe3ba83411e915e81u}, /* 10^51 */
    {0x35748e292afa601au, 0x1ca924116635b621u}, /* 10^52 */
    {0x2168d8d9badc7c10u, 0x51e9b68adfe191d5u}, /* 10^53 */
    {0x29c30f1029939b14u, 0x6664242d97d9f64au}, /* 10^54 */
    {0x3433d2d433f881d9u, 0x7ffd2d38fdd073dcu}, /* 10^55 */
    {0x20a063c4a07b5127u, 0xeffe3c439ea2486au}, /* 10^56 */
    {0x28c87cb5c89a2571u, 0xebfdcb54864ada84u}, /* 10^57 */
    {0x32fa9be33ac0aeceu, 0x66fd3e29a7dd9125u}, /* 10^58 */
    {0x3fb942dc0970da82u, 0x00bc8db411d4f56eu}, /* 10^59 */
    {0x27d3c9c985e68891u, 0x4075d8908b251965u}, /* 10^60 */
    {0x31c8bc3be7602ab5u, 0x90934eb4adee5fbeu}, /* 10^61 */
    {0x3e3aeb4ae1383562u, 0xf4b82261d969f7adu}, /* 10^62 */
    {0x26e4d30eccc3215du, 0xd8f3157d27e23accu}, /* 10^63 */
    {0x309e07d27ff3e9b5u, 0x4f2fdadc71dac97fu}, /* 10^64 */
    {0x3cc589c71ff0e422u, 0xa2fbd1938e517bdfu}, /* 10^65 */
    {0x25fb761c73f68e95u, 0xa5dd62fc38f2ed6cu}, /* 10^66 */
    {0x2f7a53a390f4323bu, 0x0f54bbbb472fa8c6u}, /* 10^67 */
    {0x3b58e88c75313ec9u, 0xd329eaaa18fb92f8u}, /* 10^68 */
    {0x25179157c93ec73eu, 0x23fa32aa4f9d3bdbu}, /* 10^69 */
    {0x2e5d75adbb8e790du, 0xacf8bf54e3848ad2u}, /* 10^70 */
    {0x39f4d3192a721751u, 0x1836ef2a1c65ad86u}, /* 10^71 */
    {0x243903efba874e92u, 0xaf22557a51bf8c74u}, /* 10^72 */
    {0x2d4744eba9292237u, 0x5aeaead8e62f6f91u}, /* 10^73 */
    {0x3899162693736ac5u, 0x31a5a58f1fbb4b75u}, /* 10^74 */
    {0x235fadd81c2822bbu, 0x3f07877973d50f29u}, /* 10^75 */
    {0x2c37994e23322b6au, 0x0ec96957d0ca52f3u}, /* 10^76 */
    {0x37457fa1abfeb644u, 0x927bc3adc4fce7b0u}, /* 10^77 */
    {0x228b6fc50b7f31eau, 0xdb8d5a4c9b1e10ceu}, /* 10^78 */
    {0x2b2e4bb64e5efe65u, 0x9270b0dfc1e59502u}, /* 10^79 */
    {0x35f9dea3e1f6bdfeu, 0xf70cdd17b25efa42u}, /* 10^80 */
    {0x21bc2b266d3a36bfu, 0x5a680a2ecf7b5c69u}, /* 10^81 */
    {0x2a2b35f00888c46fu, 0x31020cba835a3384u}, /* 10^82 */
    {0x34b6036c0aaaf58au, 0xfd428fe92430c065u}, /* 10^83 */
    {0x20f1c22386aad976u, 0xde4999f1b69e783fu}, /* 10^84 */
    {0x292e32ac68558fd4u, 0x95dc006e2446164fu}, /* 10^85 */
    {0x3379bf57826af3c9u, 0xbb530089ad579be2u}, /* 10^86 */
    {0x202c1796b182d85eu, 0x1513e0560c56c16eu}, /* 10^87 */
    {0x28371d7c5de38e75u, 0x9a58d86b8f6c71c9u}, /* 10^88 */
    {0x3244e4db755c7213u, 0x00ef0e8673478e3bu}, /* 10^89 */
    {0x3ed61e1252b38e97u, 0xc12ad228101971c9u}, /* 10^90 */
    {0x2745d2cb73b0391eu, 0xd8bac3590a0fe71eu}, /* 10^91 */
    {0x3117477e509c4766u, 0x8ee9742f4c93e0e6u}, /* 10^92 */
    {0x3d5d195de4c35940u, 0x32a3d13b1fb8d91fu}, /* 10^93 */
    {0x265a2fdaaefa17c8u, 0x1fa662c4f3d387b3u}, /* 10^94 */
    {0x2ff0bbd15ab89dbau, 0x278ffb7630c869a0u}, /* 10^95 */
    {0x3beceac5b166c528u, 0xb173fa53bcfa8408u}, /* 10^96 */
    {0x257412bb8ee03b39u, 0x6ee87c74561c9285u}, /* 10^97 */
    {0x2ed1176a72984a07u, 0xcaa29b916ba3b726u}, /* 10^98 */
    {0x3a855d450f3e5c89u, 0xbd4b4275c68ca4f0u}, /* 10^99 */
    {0x24935a4b2986f9d6u, 0x164f09899c17e716u}, /* 10^100 */
    {0x2db830ddf3e8b84bu, 0x9be2cbec031de0dcu}, /* 10^101 */
    {0x39263d1570e2e65eu, 0x82db7ee703e55912u}, /* 10^102 */
    {0x23b7e62d668dcffbu, 0x11c92f50626f57acu}, /* 10^103 */
    {0x2ca5dfb8c03143f9u, 0xd63b7b247b0b2d96u}, /* 10^104 */
    {0x37cf57a6f03d94f8u, 0x4bca59ed99cdf8fcu}, /* 10^105 */
    {0x22e196c856267d1bu, 0x2f5e78348020bb9eu}, /* 10^106 */
    {0x2b99fc7a6bb01c61u, 0xfb361641a028ea85u}, /* 10^107 */
    {0x36807b99069c237au, 0x7a039bd208332526u}, /* 10^108 */
    {0x22104d3fa421962cu, 0x8c424163451ff738u}, /* 10^109 */
    {0x2a94608f8d29fbb7u, 0xaf52d1bc1667f506u}, /* 10^110 */
    {0x353978b370747aa5u, 0x9b27862b1c01f247u}, /* 10^111 */
    {0x2143eb702648cca7u, 0x80f8b3daf181376du}, /* 10^112 */
    {0x2994e64c2fdaffd1u, 0x6136e0d1ade18548u}, /* 10^113 */
    {0x33fa1fdf3bd1bfc5u, 0xb98499061959e699u}, /* 10^114 */
    {0x207c53eb856317dbu, 0x93f2dfa3cfd83020u}, /* 10^115 */
    {0x289b68e666bbddd2u, 0x78ef978cc3ce3c28u}, /* 10^116 */
    {0x32c24320006ad547u, 0x172b7d6ff4c1cb32u}, /* 10^117 */
    {0x3f72d3e800858a98u, 0xdcf65ccbf1f23dfeu}, /* 10^118 */
    {0x27a7c4710053769fu, 0x8a19f9ff773766bfu}, /* 10^119 */
    {0x3191b58d40685447u, 0x6ca0787f5505406fu}, /* 10^120 */
    {0x3df622f090826959u, 0x47c8969f2a46908au}, /* 10^121 */
    {0x26b9d5d65a5181d7u, 0xccdd5e237a6c1a57u}, /* 10^122 */
    {0x30684b4bf0e5e24du, 0xc014b5ac590720ecu}, /* 10^123 */
    {0x3c825e1eed1f5ae1u, 0x3019e3176f48e927u}, /* 10^124 */
    {0x25d17ad3543398ccu, 0xbe102deea58d91b9u}, /* 10^125 */
    {0x2f45d98829407effu, 0xed94396a4ef0f627u}, /* 10^126 */
    {0x3b174fea33909ebfu, 0xe8f947c4e2ad33b0u}, /* 10^127 */
    {0x24ee91f2603a6337u, 0xf19bccdb0dac404eu}, /* 10^128 */
    {0x2e2a366ef848fc05u, 0xee02c011d1175062u}, /* 10^129 */
    {0x39b4c40ab65b3b07u, 0x69837016455d247au}, /* 10^130 */
    {0x2410fa86b1f904e4u, 0xa1f2260deb5a36ccu}, /* 10^131 */
    {0x2d1539285e77461du, 0xca6eaf916630c47fu}, /* 10^132 */
    {0x385a8772761517a5u, 0x3d0a5b75bfbcf59fu}, /* 10^133 */
    {0x233894a789cd2ec7u, 0x4626792997d61984u}, /* 10^134 */
    {0x2c06b9d16c407a79u, 0x17b01773fdcb9fe4u}, /* 10^135 */
    {0x37086845c7509917u, 0x5d9c1d50fd3e87ddu}, /* 10^136 */
    {0x2265412b9c925faeu, 0x9a8192529e4714ebu}, /* 10^137 */
    {0x2afe917683b6f79au, 0x4121f6e745d8da25u}, /* 10^138 */
    {0x35be35d424a4b580u, 0xd16a74a1174f10aeu}, /* 10^139 */
    {0x2196e1a496e6f170u, 0x82e288e4ae916a6du}, /* 10^140 */
    {0x29fc9a0dbca0adccu, 0xa39b2b1dda35c508u}, /* 10^141 */
    {0x347bc0912bc8d93fu, 0xcc81f5e550c3364au}, /* 10^142 */
    {0x20cd585abb5d87c7u, 0xdfd139af527a01efu}, /* 10^143 */
    {0x2900ae716a34e9b9u, 0xd7c5881b2718826au}, /* 10^144 */
    {0x3340da0dc4c22428u, 0x4db6ea21f0dea304u}, /* 10^145 */
    {0x200888489af95699u, 0x30925255368b25e3u}, /* 10^146 */
    {0x280aaa5ac1b7ac3fu, 0x7cb6e6ea842def5cu}, /* 10^147 */
    {0x320d54f17225974fu, 0x5be4a0a525396b32u}, /* 10^148 */
    {0x3e90aa2dceaefd23u, 0x32ddc8ce6e87c5ffu}, /* 10^149 */
    {0x271a6a5ca12d5e35u, 0xffca9d810514dbbfu}, /* 10^150 */
    {0x30e104f3c978b5c3u, 0x7fbd44e1465a12afu}, /* 10^151 */
    {0x3d194630bbd6e334u, 0x5fac961997f0975bu}, /* 10^152 */
    {0x262fcbde75664e00u, 0xbbcbddcffef65e99u}, /* 10^153 */
    {0x2fbbbed612bfe180u, 0xeabed543feb3f63fu}, /* 10^154 */
    {0x3baaae8b976fd9e1u, 0x256e8a94fe60f3cfu}, /* 10^155 */
    {0x254aad173ea5e82cu, 0xb765169d1efc9861u}, /* 10^156 */
    {0x2e9d585d0e4f6237u, 0xe53e5c4466bbbe7au}, /* 10^157 */
    {0x3a44ae7451e33ac5u, 0xde8df355806aae18u}, /* 10^158 */
    {0x246aed08b32e04bbu, 0xab18b8157042accfu}, /* 10^159 */
    {0x2d85a84adff985eau, 0x95dee61acc535803u}, /* 10^160 */
    {0x38e7125d97f7e765u, 0x3b569fa17f682e03u}, /* 10^161 */
    {0x23906b7a7efaf09fu, 0x451623c4efa11cc2u}, /* 10^162 */
    {0x2c7486591eb9acc7u, 0x165bacb62b8963f3u}, /* 10^163 */
    {0x3791a7ef666817f8u, 0xdbf297e3b66bbcefu}, /* 10^164 */
    {0x22bb08f5a0010efbu, 0x89779eee52035616u}, /* 10^165 */
    {0x2b69cb33080152bau, 0x6bd586a9e6842b9bu}, /* 10^166 */
    {0x36443dffca01a769u, 0x06cae85460253682u}, /* 10^167 */
    {0x21eaa6bfde4108a1u, 0xa43ed134bc174211u}, /* 10^168 */
    {0x2a65506fd5d14acau, 0x0d4e8581eb1d1295u}, /* 10^169 */
    {0x34fea48bcb459d7cu, 0x90a226e265e4573bu}, /* 10^170 */
    {0x211f26d75f0b826du, 0xda65584d7faeb685u}, /* 10^171 */
    {0x2966f08d36ce6309u, 0x50feae60df9a6426u}, /* 10^172 */
    {0x33c0acb08481fbcbu, 0xa53e59f91780fd2fu}, /* 10^173 */
    {0x20586bee52d13d5fu, 0x4746f83baeb09e3eu}, /* 10^174 */
    {0x286e86e9e7858cb7u, 0x1918b64a9a5cc5cdu}, /* 10^175 */
    {0x328a28a46166efe4u, 0xdf5ee3dd40f3f740u}, /* 10^176 */
    {0x3f2cb2cd79c0abdeu, 0x17369cd49130f510u}, /* 10^177 */
    {0x277befc06c186b6au, 0xce822204dabe992au}, /* 10^178 */
    {0x315aebb0871e8645u, 0x8222aa86116e3f75u}, /* 10^179 */
    {0x3db1a69ca8e627d6u, 0xe2ab552795c9cf52u}, /* 10^180 */
    {0x268f0821e98fd8e6u, 0x4dab1538bd9e2193u}, /* 10^181 */
    {0x3032ca2a63f3cf1fu, 0xe115da86ed05a9f8u}, /* 10^182 */
    {0x3c3f7cb4fcf0c2e7u, 0xd95b5128a8471476u}, /* 10^183 */
    {0x25a7adf11e1679d0u, 0xe7d912b9692c6ccau}, /* 10^184 */
    {0x2f11996d659c1845u, 0x21cf5767c37787fcu}, /* 10^185 */
    {0x3ad5ffc8bf031e56u, 0x6a432d41b45569fbu}, /* 10^186 */
    {0x24c5bfdd7761f2f6u, 0x0269fc4910b5623du}, /* 10^187 */
    {0x2df72fd4d53a6fb3u, 0x83047b5b54e2baccu}, /* 10^188 */
    {0x3974fbca0a890ba0u, 0x63c59a322a1b697fu}, /* 10^189 */
    {0x23e91d5e4695a744u, 0x3e5b805f5a5121f0u}, /* 10^190 */
    {0x2ce364b5d83b1115u, 0x4df2607730e56a6cu}, /* 10^191 */
    {0x381c3de34e49d55au, 0xa16ef894fd1ec506u}, /* 10^192 */
    {0x2311a6ae10ee2558u, 0xa4e55b5d1e333b24u}, /* 10^193 */
    {0x2bd610599529aeaeu, 0xce1eb23465c009edu}, /* 10^194 */
    {0x36cb946ffa741a5au, 0x81a65ec17f300c68u}, /* 10^195 */
    {0x223f3cc5fc889078u, 0x9107fb38ef7e07c1u}, /* 10^196 */
    {0x2acf0bf77baab496u, 0xb549fa072b5d89b1u}, /* 10^197 */
    {0x3582cef55a9561bcu, 0x629c7888f634ec1eu}, /* 10^198 */
    {0x2171c159589d5d15u, 0xbda1cb5599e11393u}, /* 10^199 */
    {0x29ce31afaec4b45bu, 0x2d0a3e2b00595877u}, /* 10^200 */
    {0x3441be1b9a75e171u, 0xf84ccdb5c06fae95u}, /* 10^201 */
    {0x20a916d14089ace7u, 0x3b3000919845cd1du}, /* 10^202 */
    {0x28d35c8590ac1821u, 0x09fc00b5fe574065u}, /* 10^203 */
    {0x330833a6f4d71e29u, 0x4c7b00e37ded107eu}, /* 10^204 */
    {0x3fca4090b20ce5b3u, 0x9f99c11c5d68549du}, /* 10^205 */
    {0x27de685a6f480f90u, 0x43c018b1ba6134e2u}, /* 10^206 */
    {0x31d602710b1a1374u, 0x54b01ede28f9821bu}, /* 10^207 */
    {0x3e4b830d4de09851u, 0x69dc2695b337e2a1u}, /* 10^208 */
    {0x26ef31e850ac5f32u, 0xe229981d9002eda5u}, /* 10^209 */
    {0x30aafe6264d776ffu, 0x9ab3fe24f403a90eu}, /* 10^210 */
    {0x3cd5bdfafe0d54bfu, 0x8160fdae31049351u}, /* 10^211 */
    {0x260596bcdec854f7u, 0xb0dc9e8cdea2dc13u}, /* 10^212 */
    {0x2f86fc6c167a6a35u, 0x9d13c630164b9318u}, /* 10^213 */
    {0x3b68bb871c1904c3u, 0x0458b7bc1bde77ddu}, /* 10^214 */
    {0x25217534718fa2f9u, 0xe2b772d5916b0aebu}, /* 10^215 */
    {0x2e69d2818df38bb8u, 0x5b654f8af5c5cda5u}, /* 10^216 */
    {0x3a044721f1706ea6u, 0x723ea36db337410eu}, /* 10^217 */
    {0x2442ac7536e64528u, 0x07672624900288a9u}, /* 10^218 */
    {0x2d535792849fd672u, 0x0940efadb4032ad3u}, /* 10^219 */
    {0x38a82d7725c7cc0eu, 0x8b912b992103f588u}, /* 10^220 */
    {0x23691c6a779cdf89u, 0x173abb3fb4a27975u}, /* 10^221 */
    {0x2c4363851584176bu, 0x5d096a0fa1cb17d2u}, /* 10^222 */
    {0x37543c665ae51d46u, 0x344bc4938a3dddc7u}, /* 10^223 */
    {0x2294a5bff8cf324bu, 0xe0af5adc3666aa9cu}, /* 10^224 */
    {0x2b39cf2ff702fedeu, 0xd8db319344005543u}, /* 10^225 */
    {0x360842fbf4c3be96u, 0x8f11fdf815006a94u}, /* 10^226 */
    {0x21c529dd78fa571eu, 0x196b3ebb0d20429du}, /* 10^227 */
    {0x2a367454d738ece5u, 0x9fc60e69d0685344u}, /* 10^228 */
    {0x34c4116a0d07281fu, 0x07b7920444826815u}, /* 10^229 */
    {0x20fa8ae248247913u, 0x64d2bb42aad1810du}, /* 10^230 */
    {0x29392d9ada2d9758u, 0x3e076a135585e150u}, /* 10^231 */
    {0x3387790190b8fd2eu, 0x4d8944982ae759a4u}, /* 10^232 */
    {0x2034aba0fa739e3cu, 0xf075cadf1ad09807u}, /* 10^233 */
    {0x2841d689391085ccu, 0x2c933d96e184be08u}, /* 10^234 */
    {0x32524c2b8754a73fu, 0x37b80cfc99e5ed8au}, /* 10^235 */
    {0x3ee6df366929d10fu, 0x05a6103bc05f68edu}, /* 10^236 */
    {0x27504b8201ba22a9u, 0x6387ca25583ba194u}, /* 10^237 */
    {0x31245e628228ab53u, 0xbc69bcaeae4a89f9u}, /* 10^238 */
    {0x3d6d75fb22b2d628u, 0xab842bda59dd2c77u}, /* 10^239 */
    {0x266469bcf5afc5d9u, 0x6b329b68782a3bcbu}, /* 10^240 */
    {0x2ffd842c331bb74fu, 0xc5ff42429634cabdu}, /* 10^241 */
    {0x3bfce5373fe2a523u, 0xb77f12d33bc1fd6du}, /* 10^242 */
    {0x257e0f4287eda736u, 0x52af6bc405593e64u}, /* 10^243 */
    {0x2edd931329e91103u, 0xe75b46b506af8dfdu}, /* 10^244 */
    {0x3a94f7d7f4635544u, 0xe1321862485b717cu}, /* 10^245 */
    {0x249d1ae6f8be154bu, 0x0cbf4f3d6d3926eeu}, /* 10^246 */
    {0x2dc461a0b6ed9a9du, 0xcfef230cc88770a9u}, /* 10^247 */
    {0x39357a08e4a90145u, 0x43eaebcffaa94cd3u}, /* 10^248 */
    {0x23c16c458ee9a0cbu, 0x4a72d361fca9d004u}, /* 10^249 */
    {0x2cb1c756f2a408feu, 0x1d0f883a7bd44405u}, /* 10^250 */
    {0x37de392caf4d0b3du, 0xa4536a491ac95506u}, /* 10^251 */
    {0x22eae3bbed902706u, 0x86b4226db0bdd524u}, /* 10^252 */
    {0x2ba59caae8f430c8u, 0x28612b091ced4a6du}, /* 10^253 */
    {0x368f03d5a3313cfau, 0x327975cb64289d08u}, /* 10^254 */
    {0x2219626585fec61cu, 0x5f8be99f1e996225u}, /* 10^255 */
    {0x2a9fbafee77e77a3u, 0x776ee406e63fbaaeu}, /* 10^256 */
    {0x3547a9bea15e158cu, 0x554a9d089fcfa95au}, /* 10^257 */
    {0x214cca1724dacd77u, 0xb54ea22563e1c9d8u}, /* 10^258 */
    {0x299ffc9cee1180d5u, 0xa2a24aaebcda3c4eu}, /* 10^259 */
    {0x3407fbc42995e10bu, 0x0b4add5a6c10cb62u}, /* 10^260 */
    {0x2084fd5a99fdaca6u, 0xe70eca58838a7f1du}, /* 10^261 */
    {0x28a63cb1407d17d0u, 0xa0d27ceea46d1ee4u}, /* 10^262 */
    {0x32cfcbdd909c5dc4u, 0xc9071c2a4d88669du}, /* 10^263 */
    {0x3f83bed4f4c37535u, 0xfb48e334e0ea8045u}, /* 10^264 */
    {0x27b2574518fa2941u, 0xbd0d8e010c92902bu}, /* 10^265 */
    {0x319eed165f38b392u, 0x2c50f1814fb73436u}, /* 10^266 */
    {0x3e06a85bf706e076u, 0xb7652de1a3a50143u}, /* 10^267 */
    {0x26c429397a644c4au, 0x329f3cad064720cau}, /* 10^268 */
    {0x30753387d8fd5f5cu, 0xbf470bd847d8e8fdu}, /* 10^269 */
    {0x3c928069cf3cb733u, 0xef18cece59cf233cu}, /* 10^270 */
    {0x25db90422185f280u, 0x756f8140f8217605u}, /* 10^271 */
    {0x2f527452a9e76f20u, 0x92cb61913629d387u}, /* 10^272 */
    {0x3b27116754614ae8u, 0xb77e39f583b44868u}, /* 10^273 */
    {0x24f86ae094bcced1u, 0x72aee4397250ad41u}, /* 10^274 */
    {0x2e368598b9ec0285u, 0xcf5a9d47cee4d891u}, /* 10^275 */
    {0x39c426fee8670327u, 0x43314499c29e0eb6u}, /* 10^276 */
    {0x241a985f514061f8u, 0x89fecae019a2c932u}, /* 10^277 */
    {0x2d213e7725907a76u, 0xac7e7d98200b7b7eu}, /* 10^278 */
    {0x38698e14eef49914u, 0x579e1cfe280e5a5du}, /* 10^279 */
    {0x2341f8cd1558dfacu, 0xb6c2d21ed908f87bu}, /* 10^280 */
    {0x2c1277005aaf1797u, 0xe47386a68f4b3699u}, /* 10^281 */
    {0x371714c0715add7du, 0xdd906850331e043fu}, /* 10^282 */
    {0x226e6cf846d8ca6eu, 0xaa7a41321ff2c2a8u}, /* 10^283 */
    {0x2b0a0836588efd0au, 0x5518d17ea7ef7352u}, /* 10^284 */
    {0x35cc8a43eeb2bc4cu, 0xea5f05de51eb5026u}, /* 10^285 */
    {0x219fd66a752fb5b0u, 0x127b63aaf3331218u}, /* 10^286 */
    {0x2a07cc05127ba31cu, 0x171a3c95afffd69eu}, /* 10^287 */
    {0x3489bf06571a8be3u, 0x1ce0cbbb1bffcc45u}, /* 10^288 */
    {0x20d61763f670976du, 0xf20c7f54f17fdfabu}, /* 10^289 */
    {0x290b9d3cf40cbd49u, 0x6e8f9f2a2ddfd796u}, /* 10^290 */
    {0x334e848c310fec9bu, 0xca3386f4b957cd7bu}, /* 10^291 */
    {0x201112d79ea9f3e1u, 0x5e603458f3d6e06du}, /* 10^292 */
    {0x2815578d865470d9u, 0xb5f8416f30cc9888u}, /* 10^293 */
    {0x321aad70e7e98d10u, 0x237651cafcffbeaau}, /* 10^294 */
    {0x3ea158cd21e3f054u, 0x2c53e63dbc3fae55u}, /* 10^295 */
    {0x2724d780352e7634u, 0x9bb46fe695a7ccf5u}, /* 10^296 */
    {0x30ee0d60427a13c1u, 0xc2a18be03b11c033u}, /* 10^297 */
    {0x3d2990b8531898b2u, 0x3349eed849d6303fu}, /* 10^298 */
    {0x2639fa7333ef5f6fu, 0x600e35472e25de28u}, /* 10^299 */
    {0x2fc8791000eb374bu, 0x3811c298f9af55b1u}, /* 10^300 */
    {0x3bba97540126051eu, 0x0616333f381b2b1eu}, /* 10^301 */
    {0x25549e9480b7c332u, 0xc3cde0078310faf3u}, /* 10^302 */
    {0x2ea9c639a0e5b3ffu, 0x74c1580963d539afu}, /* 10^303 */
    {0x3a5437c8091f20ffu, 0x51f1ae0bbcca881bu}, /* 10^304 */
    {0x2474a2dd05b3749fu, 0x93370cc755fe9511u}, /* 10^305 */
    {0x2d91cb94472051c7u, 0x7804cff92b7e3a55u}, /* 10^306 */
    {0x38f63e7958e86639u, 0x560603f7765dc8eau}, /* 10^307 */
    {0x2399e70bd7913fe3u, 0xd5c3c27aa9fa9d93u}, /* 10^308 */
    {0x2c8060cecd758fdcu, 0xcb34b319547944f7u}, /* 10^309 */
    {0x37a0790280d2f3d3u, 0xfe01dfdfa9979635u}, /* 10^310 */
    {0x22c44ba19083d864u, 0x7ec12bebc9febde1u}, /* 10^311 */
    {0x2b755e89f4a4ce7du, 0x9e7176e6bc7e6d59u}, /* 10^312 */
    {0x3652b62c71ce021du, 0x060dd4a06b9e08b0u}, /* 10^313 */
    {0x21f3b1dbc720c152u, 0x23c8a4e44342c56eu}, /* 10^314 */
    {0x2a709e52b8e8f1a6u, 0xacbace1d541376c9u}, /* 10^315 */
    {0x350cc5e767232e10u, 0x57e981a4a918547bu}, /* 10^316 */
    {0x2127fbb0a075fccau, 0x36f1f106e9af34cdu}, /* 10^317 */
    {0x2971fa9cc8937bfcu, 0xc4ae6d48a41b0201u}, /* 10^318 */
    {0x33ce7943fab85afbu, 0xf5da089acd21c281u}, /* 10^319 */
    {0x20610bca7cb338ddu, 0x79a84560c0351991u}, /* 10^320 */
    {0x28794ebd1be00714u, 0xd81256b8f0425ff5u}, /* 10^321 */
    {0x3297a26c62d808dau, 0x0e16ec672c52f7f2u}, /* 10^322 */
    {0x3f3d8b077b8e0b10u, 0x919ca780f767b5eeu}, /* 10^323 */
    {0x278676e4ad38c6eau, 0x5b01e8b09aa0d1b5u}, /* 10^324 */
};

/* floor(q log10 2), floor(log10(3/4 * 2^q)) and floor(e log2 10), exact
 * over the exponents of doubles (checked exhaustively against rational
 * arithmetic when G was computed). >> of a negative value is an arithmetic
 * shift with every compiler we build with (GCC, Clang). */
static inline int flog10_pow2(int q) { return (int)(((int64_t)q * 661971961083LL) >> 41); }
static inline int flog10_3q_pow2(int q) { return (int)(((int64_t)q * 661971961083LL - 274743187321LL) >> 41); }
static inline int flog2_pow10(int e) { return (int)(((int64_t)e * 913124641741LL) >> 38); }

/* g * cp / 2^128 rounded to odd: the result's low bit is set when any of
 * the product's bits 64..127 is. Bits 0..63 are left out on purpose: g
 * overestimates by less than 1, which moves the product by less than cp <
 * 2^64, so an exact product (an interval end that is a decimal) still
 * reads as exact. g < 2^126 and cp < 2^61, so nothing overflows. */
static inline uint64_t rop(const uint64_t g[2], uint64_t cp)
{
    unsigned __int128 lo = (unsigned __int128)g[1] * cp;
    unsigned __int128 mid = (unsigned __int128)g[0] * cp + (uint64_t)(lo >> 64);
    return (uint64_t)(mid >> 64) | ((uint64_t)mid != 0);
}

/* The shortest decimal f * 10^e (f without trailing zeros, at most 17
 * digits) that reads back as v; v finite and > 0. */
static void shortest(double v, uint64_t *f_out, int *e_out)
{
    uint64_t bits = mk_f64_bits(v);
    uint64_t t = bits & ((1ull << 52) - 1);
    int bq = (int)(bits >> 52) & 0x7ff;
    uint64_t c, f;
    int q, e, is_irregular = 0;
    if (bq != 0) {
        c = t | (1ull << 52);
        q = bq - 1075;
        if (q < 0 && q > -53) { /* a whole number below 2^53 is its own shortest form */
            uint64_t fi = c >> -q;
            if (fi << -q == c) {
                f = fi;
                e = 0;
                goto strip;
            }
        }
        /* a power of two has its lower neighbour at half the distance
         * (except at the smallest normal exponent) */
        is_irregular = t == 0 && bq > 1;
    } else {
        c = t;
        q = -1074;
    }
    {
        uint64_t out = c & 1; /* odd c: the interval's ends read back elsewhere */
        uint64_t cb = c << 2, cbr = cb + 2, cbl;
        int k;
        if (!is_irregular) {
            cbl = cb - 2;
            k = flog10_pow2(q);
        } else {
            cbl = cb - 1;
            k = flog10_3q_pow2(q);
        }
        int h = q + flog2_pow10(-k) + 3; /* 3..6 */
        const uint64_t *g = G[292 - k];
        uint64_t vb = rop(g, cb << h), vbl = rop(g, cbl << h), vbr = rop(g, cbr << h);
        uint64_t s = vb >> 2;
        uint64_t sp10 = s / 10 * 10, tp10 = sp10 + 10;
        int upin = vbl + out <= sp10 << 2, wpin = (tp10 << 2) + out <= vbr;
        e = k;
        if (upin != wpin) {
            f = upin ? sp10 : tp10;
            goto strip;
        }
        uint64_t t1 = s + 1;
        int uin = vbl + out <= s << 2, win = (t1 << 2) + out <= vbr;
        if (uin != win) {
            f = uin ? s : t1;
            goto strip;
        }
        int64_t cmp = (int64_t)(vb - ((s + t1) << 1));
        f = cmp < 0 || (cmp == 0 && (s & 1) == 0) ? s : t1;
    }
strip: /* at most 16 trailing zeros (f < 10^17, f > 0): 8s, then 4, 2, 1 */
    while (f && f % 100000000 == 0) {
        f /= 100000000;
        e += 8;
    }
    if (f && f % 10000 == 0) {
        f /= 10000;
        e += 4;
    }
    if (f && f % 100 == 0) {
        f /= 100;
        e += 2;
    }
    if (f && f % 10 == 0) {
        f /= 10;
        e++;
    }
    *f_out = f;
    *e_out = e;
}

static const char DIGITS2[] = "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
                              "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
                              "8081828384858687888990919293949596979899";

static inline void put2(char *p, unsigned v)
{
    p[0] = DIGITS2[v * 2];
    p[1] = DIGITS2[v * 2 + 1];
}

/* Exactly 8 digits of v < 10^8 (with leading zeros). */
static inline void put8(char *p, uint32_t v)
{
    uint32_t hi = v / 10000, lo = v % 10000;
    put2(p, hi / 100);
    put2(p + 2, hi % 100);
    put2(p + 4, lo / 100);
    put2(p + 6, lo % 100);
}

/* Decimal digits of v < 10^8 without leading zeros; returns their count. */
static inline size_t put_u32_small(uint32_t v, char *p)
{
    size_t n = v < 10 ? 1 : v < 100 ? 2 : v < 1000 ? 3 : v < 10000 ? 4 : v < 100000 ? 5 : v < 1000000 ? 6 : v < 10000000 ? 7 : 8;
    char *w = p + n;
    while (v >= 100) {
        w -= 2;
        put2(w, v % 100);
        v /= 100;
    }
    if (v >= 10) put2(w - 2, v);
    else w[-1] = (char)('0' + v);
    return n;
}

/* Decimal digits of u at p; returns their count (1..20). Blocks of eight
 * digits in 32-bit arithmetic: this runs for every number written. */
static size_t fmt_u64(uint64_t u, char *p)
{
    if (u < 100000000) return put_u32_small((uint32_t)u, p);
    if (u < 10000000000000000ull) {
        size_t n = put_u32_small((uint32_t)(u / 100000000), p);
        put8(p + n, (uint32_t)(u % 100000000));
        return n + 8;
    }
    uint64_t hi = u / 100000000;
    size_t n = put_u32_small((uint32_t)(hi / 100000000), p); /* <= 1844 */
    put8(p + n, (uint32_t)(hi % 100000000));
    put8(p + n + 8, (uint32_t)(u % 100000000));
    return n + 16;
}

static size_t fmt_i64(int64_t i, char *p)
{
    if (i < 0) {
        *p = '-';
        return 1 + fmt_u64(0 - (uint64_t)i, p + 1);
    }
    return fmt_u64((uint64_t)i, p);
}

#define FLOAT_MAX_CHARS 400 /* "-0." + 323 zeros + 17 digits, with room to spare */

/* v (finite) as Go's strconv writes the shortest form: is_json picks
 * encoding/json's rule (exponent outside [1e-6, 1e21), "e-7" not "e-07"),
 * otherwise FormatFloat(v, 'f', -1, 64). Returns the length. */
static size_t fmt_double(double v, int is_json, char *p)
{
    char *p0 = p;
    if (signbit(v)) {
        *p++ = '-';
        v = -v;
    }
    if (v == 0) {
        *p++ = '0';
        return (size_t)(p - p0);
    }
    uint64_t f;
    int e;
    shortest(v, &f, &e);
    char d[20];
    int nd = (int)fmt_u64(f, d);
    int dp = nd + e; /* v = 0.d * 10^dp */
    if (is_json && (v < 1e-6 || v >= 1e21)) {
        *p++ = d[0];
        if (nd > 1) {
            *p++ = '.';
            memcpy(p, d + 1, (size_t)nd - 1);
            p += nd - 1;
        }
        *p++ = 'e';
        int x = dp - 1;
        *p++ = x < 0 ? '-' : '+';
        p += fmt_u64((uint64_t)(x < 0 ? -x : x), p);
    } else if (dp <= 0) {
        *p++ = '0';
        *p++ = '.';
        memset(p, '0', (size_t)-dp);
        p += -dp;
        memcpy(p, d, (size_t)nd);
        p += nd;
    } else if (dp >= nd) {
        memcpy(p, d, (size_t)nd);
        p += nd;
        memset(p, '0', (size_t)(dp - nd));
        p += dp - nd;
    } else {
        memcpy(p, d, (size_t)dp);
        p += dp;
        *p++ = '.';
        memcpy(p, d + dp, (size_t)(nd - dp));
        p += nd - dp;
    }
    return (size_t)(p - p0);
}

/* ---- times ---------------------------------------------------------------- */

/* Proleptic Gregorian date of a day number (days since 1970-01-01),
 * Howard Hinnant's civil_from_days. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* The date part "YYYY-MM-DDT" of the last day formatted, so a run of times
 * on one day skips the calendar arithmetic. */
typedef struct day_cache {
    int64_t day;
    int is_set;
    char s[11];
} day_cache;

/* ns since the epoch as Go's time.RFC3339Nano in UTC (fraction without
 * trailing zeros, no '.' when whole). int64 ns spans the years 1677..2262,
 * always four digits. Returns the length. */
static size_t fmt_rfc3339(int64_t ns, day_cache *dc, char *p)
{
    int64_t secs = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    if (!dc->is_set || dc->day != days) {
        int64_t y;
        unsigned m, d;
        civil_from_days(days, &y, &m, &d);
        put2(dc->s, (unsigned)(y / 100));
        put2(dc->s + 2, (unsigned)(y % 100));
        dc->s[4] = '-';
        put2(dc->s + 5, m);
        dc->s[7] = '-';
        put2(dc->s + 8, d);
        dc->day = days;
        dc->is_set = 1;
    }
    memcpy(p, dc->s, 10);
    p[10] = 'T';
    put2(p + 11, (unsigned)(sod / 3600));
    p[13] = ':';
    put2(p + 14, (unsigned)(sod / 60 % 60));
    p[16] = ':';
    put2(p + 17, (unsigned)(sod % 60));
    size_t n = 19;
    if (frac) {
        p[n++] = '.';
        char f9[9];
        uint32_t fr = (uint32_t)frac;
        for (int i = 8; i >= 0; i--) {
            f9[i] = (char)('0' + fr % 10);
            fr /= 10;
        }
        int len = 9;
        while (f9[len - 1] == '0') len--;
        memcpy(p + n, f9, (size_t)len);
        n += (size_t)len;
    }
    p[n++] = 'Z';
    return n;
}

/* The divisor InfluxDB's convertToEpoch applies; 0 = RFC 3339. */
static int64_t epoch_divisor(const char *epoch)
{
    if (!epoch || !*epoch) return 0;
    if (!strcmp(epoch, "u") || !strcmp(epoch, "us") || !strcmp(epoch, "\xc2\xb5")) return 1000;
    if (!strcmp(epoch, "ms")) return 1000000;
    if (!strcmp(epoch, "s")) return 1000000000;
    if (!strcmp(epoch, "m")) return 60000000000;
    if (!strcmp(epoch, "h")) return 3600000000000;
    return 1;
}

/* ns / div, truncating as Go does; the common divisors are constants so
 * the compiler turns the division into a multiplication. */
static inline int64_t epoch_conv(int64_t ns, int64_t div)
{
    switch (div) {
    case 1: return ns;
    case 1000: return ns / 1000;
    case 1000000: return ns / 1000000;
    case 1000000000: return ns / 1000000000;
    default: return ns / div;
    }
}

/* ---- the output buffer ---------------------------------------------------- */

#define OB_CAP 65536

/* Bytes on their way to fn. After fn fails, rc keeps its code and every
 * later flush drops its bytes; the writers check rc to stop early. */
typedef struct ob {
    mk_qout_fn fn;
    void *ctx;
    mk_err rc;
    size_t len; /* <= OB_CAP */
    char buf[OB_CAP];
} ob;

static void ob_flush(ob *o)
{
    if (o->len && o->rc == MK_OK) o->rc = o->fn(o->ctx, o->buf, o->len);
    o->len = 0;
}

/* Space for n <= OB_CAP more bytes at the returned pointer; the caller
 * adds what it wrote to o->len. */
static inline char *ob_room(ob *o, size_t n)
{
    if (o->len + n > OB_CAP) ob_flush(o);
    return o->buf + o->len;
}

static void ob_put(ob *o, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        if (o->len == OB_CAP) ob_flush(o);
        size_t k = OB_CAP - o->len;
        if (k > n) k = n;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
    }
}

static inline void ob_putc(ob *o, char c)
{
    if (o->len == OB_CAP) ob_flush(o);
    o->buf[o->len++] = c;
}

static inline void ob_puts(ob *o, const char *s) { ob_put(o, s, strlen(s)); }

/* ---- strings -------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (NUL-terminated), 0 when p[0]
 * does not start one; the accepted ranges are Go's utf8.DecodeRune's (no
 * overlongs, surrogates or code points past U+10FFFF). */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) return (p[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
        return p[1] >= lo && p[1] <= hi && (p[2] & 0xC0) == 0x80 && (p[3] & 0xC0) == 0x80 ? 4 : 0;
    }
    return 0;
}

/* 1 for the ASCII bytes encoding/json copies as they are. */
static const unsigned char JSON_SAFE[256] = {
    [' '] = 1, ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1,
    ['*'] = 1, ['+'] = 1, [','] = 1, ['-'] = 1, ['.'] = 1, ['/'] = 1, ['0'] = 1, ['1'] = 1,
    ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    [':'] = 1, [';'] = 1, ['='] = 1, ['?'] = 1, ['@'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1,
    ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1,
    ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1,
    ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['['] = 1,
    [']'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1,
    ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['{'] = 1, ['|'] = 1,
    ['}'] = 1, ['~'] = 1, [0x7f] = 1,
};

static const char HEX[] = "0123456789abcdef";

/* s as a JSON string, quoted, escaped as encoding/json does. */
static void put_json_str(ob *o, const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    ob_putc(o, '"');
    for (;;) {
        const unsigned char *run = p;
        while (JSON_SAFE[*p]) p++;
        if (p > run) ob_put(o, run, (size_t)(p - run));
        unsigned c = *p;
        if (c == 0) break;
        char *w = ob_room(o, 8);
        size_t n = 0;
        if (c < 0x80) {
            w[n++] = '\\';
            switch (c) {
            case '"': w[n++] = '"'; break;
            case '\\': w[n++] = '\\'; break;
            case '\n': w[n++] = 'n'; break;
            case '\r': w[n++] = 'r'; break;
            case '\t': w[n++] = 't'; break;
            default:
                memcpy(w + n, "u00", 3);
                n += 3;
                w[n++] = HEX[c >> 4];
                w[n++] = HEX[c & 15];
            }
            p++;
        } else {
            size_t len = utf8_len(p);
            if (len == 0) {
                memcpy(w, "\\ufffd", 6);
                n = 6;
                p++;
            } else if (len == 3 && p[0] == 0xE2 && p[1] == 0x80 && (p[2] == 0xA8 || p[2] == 0xA9)) {
                memcpy(w, "\\u202", 5);
                w[5] = p[2] == 0xA8 ? '8' : '9';
                n = 6;
                p += 3;
            } else {
                memcpy(w, p, len);
                n = len;
                p += len;
            }
        }
        o->len += n;
    }
    ob_putc(o, '"');
}

/* ---- JSON ----------------------------------------------------------------- */

typedef struct qw {
    ob *o;
    int is_pretty;
    int64_t epoch_div; /* 0: RFC 3339 */
    day_cache dc;
    mk_buf scratch;    /* the table writer's cell text */
} qw;

/* A newline and depth levels of indent (pretty), or nothing. */
static inline void j_nl(qw *w, int depth)
{
    if (!w->is_pretty) return;
    size_t n = 1 + 4 * (size_t)depth;
    char *p = ob_room(w->o, n);
    p[0] = '\n';
    memset(p + 1, ' ', n - 1);
    w->o->len += n;
}

/* The separator before an object's key or an array's element. */
static inline void j_sep(qw *w, int depth, int *is_first)
{
    if (!*is_first) ob_putc(w->o, ',');
    *is_first = 0;
    j_nl(w, depth);
}

static void j_key(qw *w, int depth, int *is_first, const char *key)
{
    j_sep(w, depth, is_first);
    put_json_str(w->o, key);
    ob_putc(w->o, ':');
    if (w->is_pretty) ob_putc(w->o, ' ');
}

static void j_value(qw *w, const mk_qv *v)
{
    ob *o = w->o;
    if (v->type == MK_QV_STRING) {
        put_json_str(o, v->u.s);
        return;
    }
    /* longest: a quoted time ("2262-04-11T23:47:16.854775807Z" is 30
     * characters), then a float (26), an integer (20) */
    char *p = ob_room(o, 48);
    size_t n;
    switch (v->type) {
    case MK_QV_FLOAT:
        if (isfinite(v->u.f)) n = fmt_double(v->u.f, 1, p);
        else memcpy(p, "null", n = 4);
        break;
    case MK_QV_INT: n = fmt_i64(v->u.i, p); break;
    case MK_QV_BOOL:
        if (v->u.i) memcpy(p, "true", n = 4);
        else memcpy(p, "false", n = 5);
        break;
    case MK_QV_TIME:
        if (w->epoch_div) {
            n = fmt_i64(epoch_conv(v->u.i, w->epoch_div), p);
        } else {
            p[0] = '"';
            n = 1 + fmt_rfc3339(v->u.i, &w->dc, p + 1);
            p[n++] = '"';
        }
        break;
    default: memcpy(p, "null", n = 4); break;
    }
    o->len += n;
}

/* Rows [r0, r1) of s as a models.Row object at depth. */
static void j_series(qw *w, const mk_qseries *s, uint64_t r0, uint64_t r1, int is_partial, int depth)
{
    ob *o = w->o;
    int is_first = 1;
    ob_putc(o, '{');
    if (s->name && *s->name) {
        j_key(w, depth + 1, &is_first, "name");
        put_json_str(o, s->name);
    }
    if (s->n_tags) {
        j_key(w, depth + 1, &is_first, "tags");
        ob_putc(o, '{');
        int f2 = 1;
        for (uint32_t i = 0; i < s->n_tags; i++) {
            j_key(w, depth + 2, &f2, s->tag_keys[i]);
            put_json_str(o, s->tag_values[i]);
        }
        j_nl(w, depth + 1);
        ob_putc(o, '}');
    }
    if (s->n_cols) {
        j_key(w, depth + 1, &is_first, "columns");
        ob_putc(o, '[');
        int f2 = 1;
        for (uint32_t i = 0; i < s->n_cols; i++) {
            j_sep(w, depth + 2, &f2);
            put_json_str(o, s->columns[i]);
        }
        j_nl(w, depth + 1);
        ob_putc(o, ']');
    }
    if (r1 > r0) {
        j_key(w, depth + 1, &is_first, "values");
        ob_putc(o, '[');
        int f2 = 1;
        for (uint64_t r = r0; r < r1 && o->rc == MK_OK; r++) {
            j_sep(w, depth + 2, &f2);
            ob_putc(o, '[');
            const mk_qv *row = s->values + r * s->n_cols;
            for (uint32_t c = 0; c < s->n_cols; c++) {
                if (c) ob_putc(o, ',');
                j_nl(w, depth + 3);
                j_value(w, &row[c]);
            }
            if (s->n_cols) j_nl(w, depth + 2);
            ob_putc(o, ']');
        }
        j_nl(w, depth + 1);
        ob_putc(o, ']');
    }
    if (is_partial) {
        j_key(w, depth + 1, &is_first, "partial");
        ob_puts(o, "true");
    }
    if (!is_first) j_nl(w, depth);
    ob_putc(o, '}');
}

/* One query.Result at depth: the whole statement (one == NULL), or rows
 * [r0, r1) of series one alone (chunked output). */
static void j_result(qw *w, const mk_qstmt *st, const mk_qseries *one, uint64_t r0, uint64_t r1,
                     int is_series_partial, int is_partial, int depth)
{
    ob *o = w->o;
    int is_first = 1;
    ob_putc(o, '{');
    j_key(w, depth + 1, &is_first, "statement_id");
    char *p = ob_room(o, 24);
    o->len += fmt_u64(st->statement_id, p);
    if (!st->error && (one || st->n_series)) {
        j_key(w, depth + 1, &is_first, "series");
        ob_putc(o, '[');
        int f2 = 1;
        if (one) {
            j_sep(w, depth + 2, &f2);
            j_series(w, one, r0, r1, is_series_partial, depth + 2);
        } else {
            for (uint32_t i = 0; i < st->n_series && o->rc == MK_OK; i++) {
                j_sep(w, depth + 2, &f2);
                j_series(w, &st->series[i], 0, st->series[i].n_rows, 0, depth + 2);
            }
        }
        j_nl(w, depth + 1);
        ob_putc(o, ']');
    }
    if (is_partial) {
        j_key(w, depth + 1, &is_first, "partial");
        ob_puts(o, "true");
    }
    if (st->error) {
        j_key(w, depth + 1, &is_first, "error");
        put_json_str(o, st->error);
    }
    j_nl(w, depth);
    ob_putc(o, '}');
}

static void j_doc_open(qw *w)
{
    int is_first = 1;
    ob_putc(w->o, '{');
    j_key(w, 1, &is_first, "results");
    ob_putc(w->o, '[');
    j_nl(w, 2);
}

static void j_doc_close(qw *w)
{
    j_nl(w, 1);
    ob_putc(w->o, ']');
    j_nl(w, 0);
    ob_puts(w->o, "}\n");
}

static void write_json(qw *w, const mk_qresult *r, uint64_t chunk_size)
{
    uint32_t n = mk_qresult_n_stmts(r);
    if (!chunk_size) {
        if (n == 0) { /* Results is omitempty in InfluxDB's Response */
            ob_puts(w->o, "{}\n");
            return;
        }
        j_doc_open(w);
        for (uint32_t i = 0; i < n && w->o->rc == MK_OK; i++) {
            if (i) {
                ob_putc(w->o, ',');
                j_nl(w, 2);
            }
            j_result(w, mk_qresult_stmt(r, i), NULL, 0, 0, 0, 0, 2);
        }
        j_doc_close(w);
        return;
    }
    for (uint32_t i = 0; i < n && w->o->rc == MK_OK; i++) {
        const mk_qstmt *st = mk_qresult_stmt(r, i);
        if (st->error || st->n_series == 0) {
            j_doc_open(w);
            j_result(w, st, NULL, 0, 0, 0, 0, 2);
            j_doc_close(w);
            continue;
        }
        for (uint32_t si = 0; si < st->n_series && w->o->rc == MK_OK; si++) {
            const mk_qseries *s = &st->series[si];
            int has_more_series = si + 1 < st->n_series;
            uint64_t r0 = 0;
            do {
                uint64_t r1 = s->n_rows - r0 > chunk_size ? r0 + chunk_size : s->n_rows;
                int is_series_partial = r1 < s->n_rows;
                j_doc_open(w);
                j_result(w, st, s, r0, r1, is_series_partial, is_series_partial || has_more_series, 2);
                j_doc_close(w);
                r0 = r1;
            } while (r0 < s->n_rows && w->o->rc == MK_OK);
        }
    }
}

/* ---- CSV ------------------------------------------------------------------ */

/* Whether the rune at p is one Go's unicode.IsSpace accepts. */
static int starts_with_space(const unsigned char *p)
{
    if (*p == ' ' || (*p >= '\t' && *p <= '\r')) return 1;
    if (p[0] == 0xC2) return p[1] == 0x85 || p[1] == 0xA0;
    if (p[0] == 0xE1) return p[1] == 0x9A && p[2] == 0x80; /* U+1680 */
    if (p[0] == 0xE2 && p[1] == 0x80) return p[2] <= 0x8A || p[2] == 0xA8 || p[2] == 0xA9 || p[2] == 0xAF;
    if (p[0] == 0xE2 && p[1] == 0x81) return p[2] == 0x9F; /* U+205F */
    if (p[0] == 0xE3) return p[1] == 0x80 && p[2] == 0x80; /* U+3000 */
    return 0;
}

/* One field as Go's encoding/csv writes it: quoted when it holds a comma,
 * a quote, CR or LF, starts with a space, or is `\.`; quotes doubled. */
static void csv_field(ob *o, const char *s, size_t n)
{
    int needs = 0;
    if (n) {
        needs = (n == 2 && s[0] == '\\' && s[1] == '.') || starts_with_space((const unsigned char *)s);
        for (size_t i = 0; i < n && !needs; i++)
            needs = s[i] == ',' || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    }
    if (!needs) {
        ob_put(o, s, n);
        return;
    }
    ob_putc(o, '"');
    size_t from = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '"') continue;
        ob_put(o, s + from, i + 1 - from); /* through the quote, then once more */
        from = i;
    }
    ob_put(o, s + from, n - from);
    ob_putc(o, '"');
}

static void csv_str(ob *o, const char *s)
{
    if (!s) s = "";
    csv_field(o, s, strlen(s));
}

/* Appends s to b with ',', ' ' and '=' backslash-escaped (line protocol's
 * tag escaping, as models.Tags.HashKey writes it). */
static mk_err tag_escape(mk_buf *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == ',' || *s == ' ' || *s == '=') {
            if (mk_buf_append(b, "\\", 1)) return MK_ENOMEM;
        }
        if (mk_buf_append(b, s, 1)) return MK_ENOMEM;
    }
    return MK_OK;
}

static void csv_header(ob *o, const mk_qseries *s)
{
    ob_puts(o, "name,tags");
    for (uint32_t c = 0; c < s->n_cols; c++) {
        ob_putc(o, ',');
        csv_str(o, s->columns[c]);
    }
    ob_putc(o, '\n');
}

static int same_columns(const mk_qseries *a, const mk_qseries *b)
{
    if (a->n_cols != b->n_cols) return 0;
    for (uint32_t c = 0; c < a->n_cols; c++)
        if (strcmp(a->columns[c], b->columns[c])) return 0;
    return 1;
}

static void csv_value(qw *w, const mk_qv *v)
{
    ob *o = w->o;
    if (v->type == MK_QV_STRING) {
        csv_str(o, v->u.s);
        return;
    }
    char *p = ob_room(o, FLOAT_MAX_CHARS);
    size_t n = 0;
    switch (v->type) {
    case MK_QV_FLOAT:
        if (isfinite(v->u.f)) n = fmt_double(v->u.f, 0, p);
        else if (isnan(v->u.f)) memcpy(p, "NaN", n = 3);
        else memcpy(p, v->u.f > 0 ? "+Inf" : "-Inf", n = 4);
        break;
    case MK_QV_INT: n = fmt_i64(v->u.i, p); break;
    case MK_QV_BOOL:
        if (v->u.i) memcpy(p, "true", n = 4);
        else memcpy(p, "false", n = 5);
        break;
    case MK_QV_TIME: n = fmt_i64(w->epoch_div ? epoch_conv(v->u.i, w->epoch_div) : v->u.i, p); break;
    default: break; /* NULL: an empty field */
    }
    o->len += n;
}

/* InfluxDB's csvFormatter: per statement a header `name,tags,<columns>`,
 * repeated after a blank line when the columns change; a blank line
 * between statements; tags as k=v,k2=v2 with line-protocol escaping; times
 * as integers (ns unless an epoch is asked for). A failed statement, which
 * InfluxDB's CSV leaves out, is written as `error` and the message. */
static mk_err write_csv(qw *w, const mk_qresult *r)
{
    ob *o = w->o;
    mk_buf tags = {0};
    mk_err rc = MK_OK;
    int has_output = 0;
    for (uint32_t i = 0; i < mk_qresult_n_stmts(r) && o->rc == MK_OK; i++) {
        const mk_qstmt *st = mk_qresult_stmt(r, i);
        if (st->error) {
            if (has_output) ob_putc(o, '\n');
            ob_puts(o, "error\n");
            csv_str(o, st->error);
            ob_putc(o, '\n');
            has_output = 1;
            continue;
        }
        if (st->n_series == 0) continue;
        if (has_output) ob_putc(o, '\n');
        has_output = 1;
        csv_header(o, &st->series[0]);
        for (uint32_t si = 0; si < st->n_series && o->rc == MK_OK; si++) {
            const mk_qseries *s = &st->series[si];
            if (si && !same_columns(&st->series[si - 1], s)) {
                ob_putc(o, '\n');
                csv_header(o, s);
            }
            tags.len = 0;
            for (uint32_t t = 0; t < s->n_tags; t++) {
                if ((t && mk_buf_append(&tags, ",", 1)) || tag_escape(&tags, s->tag_keys[t]) ||
                    mk_buf_append(&tags, "=", 1) || tag_escape(&tags, s->tag_values[t])) {
                    rc = MK_ENOMEM;
                    goto out;
                }
            }
            for (uint64_t row = 0; row < s->n_rows && o->rc == MK_OK; row++) {
                csv_str(o, s->name);
                ob_putc(o, ',');
                csv_field(o, (const char *)tags.data, tags.len);
                const mk_qv *v = s->values + row * s->n_cols;
                for (uint32_t c = 0; c < s->n_cols; c++) {
                    ob_putc(o, ',');
                    csv_value(w, &v[c]);
                }
                ob_putc(o, '\n');
            }
        }
    }
out:
    mk_buf_free(&tags);
    return rc;
}

/* ---- table ---------------------------------------------------------------- */

/* Appends s to b for a table cell: control characters as \n, \t, \r or
 * \xHH so a value never breaks the layout; everything else as it is. */
static mk_err cell_str(mk_buf *b, const char *s)
{
    for (const char *p = s ? s : ""; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char e[4];
        if (c >= 0x20 && c != 0x7f) {
            if (mk_buf_append(b, p, 1)) return MK_ENOMEM;
            continue;
        }
        e[0] = '\\';
        size_t n = 2;
        if (c == '\n') e[1] = 'n';
        else if (c == '\t') e[1] = 't';
        else if (c == '\r') e[1] = 'r';
        else {
            e[1] = 'x';
            e[2] = HEX[c >> 4];
            e[3] = HEX[c & 15];
            n = 4;
        }
        if (mk_buf_append(b, e, n)) return MK_ENOMEM;
    }
    return MK_OK;
}

/* The text of one cell into w->scratch (replacing what was there): what
 * the influx CLI shows, i.e. the JSON number or string, times per epoch,
 * null (and NaN, which JSON makes null) as nothing. */
static mk_err table_cell(qw *w, const mk_qv *v)
{
    mk_buf *b = &w->scratch;
    b->len = 0;
    if (v->type == MK_QV_STRING) return cell_str(b, v->u.s);
    if (mk_buf_reserve(b, FLOAT_MAX_CHARS)) return MK_ENOMEM;
    char *p = (char *)b->data;
    size_t n = 0;
    switch (v->type) {
    case MK_QV_FLOAT:
        if (isfinite(v->u.f)) n = fmt_double(v->u.f, 1, p);
        break;
    case MK_QV_INT: n = fmt_i64(v->u.i, p); break;
    case MK_QV_BOOL:
        if (v->u.i) memcpy(p, "true", n = 4);
        else memcpy(p, "false", n = 5);
        break;
    case MK_QV_TIME:
        n = w->epoch_div ? fmt_i64(epoch_conv(v->u.i, w->epoch_div), p) : fmt_rfc3339(v->u.i, &w->dc, p);
        break;
    default: break;
    }
    b->len = n;
    return MK_OK;
}

/* Display width as Go's text/tabwriter counts it: runes. */
static size_t n_runes(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

static void pad(ob *o, size_t n)
{
    while (n) {
        size_t k = n > 64 ? 64 : n;
        char *p = ob_room(o, k);
        memset(p, ' ', k);
        o->len += k;
        n -= k;
    }
}

/* The influx CLI's column format (text/tabwriter, padding 1): per series
 * `name: ...`, `tags: k=v, k2=v2`, the column names, dashes as long as each
 * name, and the rows; every column but the last padded with spaces to one
 * more than its widest cell. A blank line between series and between
 * statements; a failed statement prints `ERR: message`. */
static mk_err write_table(qw *w, const mk_qresult *r)
{
    ob *o = w->o;
    size_t *width = NULL;
    mk_buf cell = {0};
    mk_err rc = MK_OK;
    int has_output = 0;
    for (uint32_t i = 0; i < mk_qresult_n_stmts(r) && o->rc == MK_OK; i++) {
        const mk_qstmt *st = mk_qresult_stmt(r, i);
        if (st->error) {
            if (has_output) ob_putc(o, '\n');
            has_output = 1;
            ob_puts(o, "ERR: ");
            cell.len = 0;
            if ((rc = cell_str(&cell, st->error))) goto out;
            ob_put(o, cell.data, cell.len);
            ob_putc(o, '\n');
            continue;
        }
        for (uint32_t si = 0; si < st->n_series && o->rc == MK_OK; si++) {
            const mk_qseries *s = &st->series[si];
            if (has_output) ob_putc(o, '\n');
            has_output = 1;
            if (s->name && *s->name) {
                ob_puts(o, "name: ");
                cell.len = 0;
                if ((rc = cell_str(&cell, s->name))) goto out;
                ob_put(o, cell.data, cell.len);
                ob_putc(o, '\n');
            }
            if (s->n_tags) {
                cell.len = 0;
                for (uint32_t t = 0; t < s->n_tags; t++) {
                    if ((t && mk_buf_append(&cell, ", ", 2)) || cell_str(&cell, s->tag_keys[t]) ||
                        mk_buf_append(&cell, "=", 1) || cell_str(&cell, s->tag_values[t])) {
                        rc = MK_ENOMEM;
                        goto out;
                    }
                }
                ob_puts(o, "tags: ");
                ob_put(o, cell.data, cell.len);
                ob_putc(o, '\n');
            }
            if (s->n_cols == 0) continue;
            free(width);
            if (!(width = calloc(s->n_cols, sizeof *width))) {
                rc = MK_ENOMEM;
                goto out;
            }
            /* widths: a first pass over the cells */
            for (uint32_t c = 0; c < s->n_cols; c++) {
                cell.len = 0;
                if ((rc = cell_str(&cell, s->columns[c]))) goto out;
                width[c] = n_runes((const char *)cell.data, cell.len);
                if (strlen(s->columns[c]) > width[c]) width[c] = strlen(s->columns[c]); /* its dashes */
            }
            for (uint64_t row = 0; row < s->n_rows; row++)
                for (uint32_t c = 0; c + 1 < s->n_cols; c++) {
                    if ((rc = table_cell(w, &s->values[row * s->n_cols + c]))) goto out;
                    size_t n = n_runes((const char *)w->scratch.data, w->scratch.len);
                    if (n > width[c]) width[c] = n;
                }
            for (int line = 0; line < 2; line++) { /* names, then dashes */
                for (uint32_t c = 0; c < s->n_cols; c++) {
                    cell.len = 0;
                    if ((rc = cell_str(&cell, s->columns[c]))) goto out;
                    size_t n = n_runes((const char *)cell.data, cell.len);
                    if (line == 0) {
                        ob_put(o, cell.data, cell.len);
                    } else {
                        n = strlen(s->columns[c]); /* strings.Repeat("-", len(name)): bytes */
                        for (size_t k = 0; k < n; k++) ob_putc(o, '-');
                    }
                    if (c + 1 < s->n_cols) pad(o, width[c] + 1 - n);
                }
                ob_putc(o, '\n');
            }
            for (uint64_t row = 0; row < s->n_rows && o->rc == MK_OK; row++) {
                for (uint32_t c = 0; c < s->n_cols; c++) {
                    if ((rc = table_cell(w, &s->values[row * s->n_cols + c]))) goto out;
                    ob_put(o, w->scratch.data, w->scratch.len);
                    if (c + 1 < s->n_cols) pad(o, width[c] + 1 - n_runes((const char *)w->scratch.data, w->scratch.len));
                }
                ob_putc(o, '\n');
            }
        }
    }
out:
    free(width);
    mk_buf_free(&cell);
    return rc;
}

/* ---- entry points --------------------------------------------------------- */

mk_err mk_qresult_write(const mk_qresult *r, const mk_qout_opts *opts, mk_qout_fn fn, void *ctx,
                        mk_diag *diag)
{
    if (!r || !opts || !fn) return mk_diag_set(diag, MK_EINVAL, "mk_qresult_write: result, options and output function are required");
    if (opts->format != MK_QFMT_JSON && opts->format != MK_QFMT_CSV && opts->format != MK_QFMT_TABLE)
        return mk_diag_set(diag, MK_EINVAL, "mk_qresult_write: unknown format %d", (int)opts->format);
    ob *o = malloc(sizeof *o);
    if (!o) return mk_diag_set(diag, MK_ENOMEM, "mk_qresult_write: no memory for the output buffer");
    o->fn = fn;
    o->ctx = ctx;
    o->rc = MK_OK;
    o->len = 0;
    qw w = {.o = o, .is_pretty = opts->is_pretty != 0, .epoch_div = epoch_divisor(opts->epoch)};
    mk_err rc = MK_OK;
    switch (opts->format) {
    case MK_QFMT_JSON: write_json(&w, r, opts->chunk_size); break;
    case MK_QFMT_CSV: rc = write_csv(&w, r); break;
    case MK_QFMT_TABLE: rc = write_table(&w, r); break;
    }
    if (rc == MK_OK) ob_flush(o);
    if (rc) mk_diag_set(diag, rc, "writing the query answer: out of memory");
    else if ((rc = o->rc)) mk_diag_set(diag, rc, "writing the query answer stopped: the output failed (%s)", mk_strerror(rc));
    mk_buf_free(&w.scratch);
    free(o);
    return rc;
}

mk_err mk_qerror_write_json(const char *msg, mk_qout_fn fn, void *ctx)
{
    if (!fn) return MK_EINVAL;
    ob *o = malloc(sizeof *o);
    if (!o) return MK_ENOMEM;
    o->fn = fn;
    o->ctx = ctx;
    o->rc = MK_OK;
    o->len = 0;
    ob_puts(o, "{\"error\":");
    put_json_str(o, msg);
    ob_puts(o, "}\n");
    ob_flush(o);
    mk_err rc = o->rc;
    free(o);
    return rc;
}
