// Seal a document's SM3 digest with seald, verify the seal through the API, sign and verify locally
// with P-256 (the JDK has no SM2), compute SM2's Z and sign in "e" mode, and print what a business
// system would store. JDK 17, no other dependency: java.net.http.HttpClient, a PKCS#12 client key.
//
//   java SealAndVerify.java --dir ../../dev --url https://localhost:8443 [--document FILE]
//
// --dir is a directory made by `seald dev` (ca.pem, app.p12 with an empty password); or give
// --ca, --p12 and --p12-password-file yourself.

import java.io.ByteArrayOutputStream;
import java.io.FileInputStream;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.PublicKey;
import java.security.Signature;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.X509EncodedKeySpec;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class SealAndVerify {
    // SM2 curve parameters (GB/T 32918.5), for Z: a, b, xG, yG.
    static final String SM2_PARAMS =
            "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"
            + "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"
            + "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
            + "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0";

    public static void main(String[] args) throws Exception {
        Map<String, String> opt = new LinkedHashMap<>();
        for (int i = 0; i + 1 < args.length; i += 2) opt.put(args[i], args[i + 1]);
        String dir = opt.getOrDefault("--dir", ".");
        String url = opt.getOrDefault("--url", "https://localhost:8443");
        Path ca = Path.of(opt.getOrDefault("--ca", dir + "/ca.pem"));
        Path p12 = Path.of(opt.getOrDefault("--p12", dir + "/app.p12"));
        char[] password = opt.containsKey("--p12-password-file")
                ? Files.readString(Path.of(opt.get("--p12-password-file"))).strip().toCharArray()
                : new char[0];
        String name = "notice.txt";
        byte[] doc = "关于启用电子印章的通知 (seald example)\n".getBytes(StandardCharsets.UTF_8);
        if (opt.containsKey("--document")) {
            Path d = Path.of(opt.get("--document"));
            doc = Files.readAllBytes(d);
            name = d.getFileName().toString();
        }
        if (!hex(Sm3.digest("abc".getBytes(StandardCharsets.US_ASCII)))
                .equals("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")) {
            throw new IllegalStateException("SM3 self-test failed");
        }
        Seald seald = new Seald(url, ca, p12, password);

        List<?> seals = (List<?>) seald.call("GET", "/v1/seals?state=active", null).get("seals");
        if (seals.isEmpty()) throw new IllegalStateException("this application is granted no active seal");
        Map<?, ?> seal = (Map<?, ?>) seals.get(0);

        // 1. Seal the document's SM3 digest (input "digest": the seal's key signs SM3(Z || D)).
        byte[] digest = Sm3.digest(doc);
        Map<String, Object> sign = new LinkedHashMap<>();
        sign.put("seal", seal.get("id"));
        sign.put("input", "digest");
        sign.put("data", b64(digest));
        Map<?, ?> sealed = seald.call("POST", "/v1/sign", sign);

        // 2. Verify it through the API, against the certificate the answer carries.
        Map<String, Object> check = new LinkedHashMap<>();
        check.put("certificate", sealed.get("cert"));
        check.put("input", "digest");
        check.put("data", b64(digest));
        check.put("signature", sealed.get("signature"));
        boolean byServer = Boolean.TRUE.equals(seald.call("POST", "/v1/verify", check).get("valid"));

        // 3. Local verification where the JDK can: P-256 with SHA-256 (SHA256withECDSA over the document).
        Map<String, Object> p256 = new LinkedHashMap<>();
        p256.put("key", "dev-p256");
        p256.put("input", "digest");
        p256.put("data", b64(MessageDigest.getInstance("SHA-256").digest(doc)));
        Map<?, ?> p256Signed = seald.call("POST", "/v1/sign", p256);
        Map<?, ?> p256Key = seald.call("GET", "/v1/keys/dev-p256", null);
        PublicKey pub = KeyFactory.getInstance("EC")
                .generatePublic(new X509EncodedKeySpec(pemBody((String) p256Key.get("public_key_pem"))));
        Signature verifier = Signature.getInstance("SHA256withECDSA");
        verifier.initVerify(pub);
        verifier.update(doc);
        boolean locally = verifier.verify(Base64.getDecoder().decode((String) p256Signed.get("signature")));

        // 4. SM2's Z, computed here and compared with the server's; then "e" mode: e = SM3(Z || M).
        Map<?, ?> sm2Key = seald.call("GET", "/v1/keys/dev-sm2", null);
        byte[] spki = pemBody((String) sm2Key.get("public_key_pem"));
        // An EC SubjectPublicKeyInfo ends with its BIT STRING's uncompressed point 04 || x || y.
        if (spki[spki.length - 65] != 4) throw new IllegalStateException("not an uncompressed SM2 point");
        byte[] xy = java.util.Arrays.copyOfRange(spki, spki.length - 64, spki.length);
        byte[] z = sm2Z(xy, "1234567812345678".getBytes(StandardCharsets.US_ASCII));
        boolean zMatches = hex(z).equals(sm2Key.get("sm2_z_default_id"));
        byte[] e = Sm3.digest(concat(z, doc));
        Map<String, Object> eSign = new LinkedHashMap<>();
        eSign.put("key", "dev-sm2");
        eSign.put("input", "e");
        eSign.put("data", b64(e));
        Map<?, ?> eSigned = seald.call("POST", "/v1/sign", eSign);
        Map<String, Object> eCheck = new LinkedHashMap<>();
        eCheck.put("key", "dev-sm2");
        eCheck.put("input", "message");
        eCheck.put("data", b64(doc));
        eCheck.put("signature", eSigned.get("signature"));
        boolean eByServer = Boolean.TRUE.equals(seald.call("POST", "/v1/verify", eCheck).get("valid"));

        Map<String, Object> record = new LinkedHashMap<>();
        record.put("document", name);
        record.put("document_sm3", hex(digest));
        record.put("seal", seal.get("id"));
        record.put("seal_name", seal.get("name"));
        record.put("key_version", sealed.get("key_version"));
        record.put("signature", sealed.get("signature"));
        record.put("certificate", sealed.get("cert"));
        record.put("audit_seq", sealed.get("audit_seq"));
        record.put("sealed_at", Instant.now().truncatedTo(ChronoUnit.SECONDS).toString());
        record.put("verified_by_server", byServer);
        record.put("p256_verified_locally", locally);
        record.put("z_matches_server", zMatches);
        record.put("e_mode_verified_by_server", eByServer);
        System.out.println(Json.write(record));
        System.exit(byServer && locally && zMatches && eByServer ? 0 : 1);
    }

    /** Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA); ENTL is the ID's length in bits, 2 bytes. */
    static byte[] sm2Z(byte[] publicXY, byte[] id) {
        int bitsLength = id.length * 8;
        byte[] entl = {(byte) (bitsLength >> 8), (byte) bitsLength};
        return Sm3.digest(concat(entl, id, HexFormat.of().parseHex(SM2_PARAMS), publicXY));
    }

    /** A client of seald over mutual TLS. */
    static final class Seald {
        final HttpClient http;
        final String url;

        Seald(String url, Path ca, Path p12, char[] password) throws Exception {
            KeyStore keys = KeyStore.getInstance("PKCS12");
            try (InputStream in = new FileInputStream(p12.toFile())) {
                keys.load(in, password);
            }
            KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
            kmf.init(keys, password);
            KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
            trust.load(null, null);
            try (InputStream in = new FileInputStream(ca.toFile())) {
                int i = 0;
                for (var c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                    trust.setCertificateEntry("ca" + i++, (X509Certificate) c);
                }
            }
            TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            tmf.init(trust);
            SSLContext tls = SSLContext.getInstance("TLS");
            tls.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
            this.http = HttpClient.newBuilder().sslContext(tls).connectTimeout(Duration.ofSeconds(10)).build();
            this.url = url;
        }

        Map<?, ?> call(String method, String path, Map<String, Object> body) throws Exception {
            HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(url + path)).timeout(Duration.ofSeconds(10));
            if (body != null) {
                req.header("content-type", "application/json").method(method, HttpRequest.BodyPublishers.ofString(Json.write(body)));
            } else {
                req.method(method, HttpRequest.BodyPublishers.noBody());
            }
            HttpResponse<String> resp = http.send(req.build(), HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
            Map<?, ?> reply = (Map<?, ?>) Json.read(resp.body());
            if (resp.statusCode() >= 300) {
                Map<?, ?> err = (Map<?, ?>) reply.get("error");
                throw new IllegalStateException(method + " " + path + ": " + resp.statusCode() + " " + err.get("code") + ": " + err.get("message"));
            }
            return reply;
        }
    }

    static byte[] pemBody(String pem) {
        return Base64.getMimeDecoder().decode(pem.replaceAll("-----[A-Z ]+-----", ""));
    }

    static String b64(byte[] b) {
        return Base64.getEncoder().encodeToString(b);
    }

    static String hex(byte[] b) {
        return HexFormat.of().formatHex(b);
    }

    static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) out.writeBytes(p);
        return out.toByteArray();
    }

    /** SM3 (GB/T 32905). The JDK has none; this is the whole algorithm, checked at start-up. */
    static final class Sm3 {
        static byte[] digest(byte[] data) {
            int[] v = {0x7380166f, 0x4914b2b9, 0x172442d7, 0xda8a0600, 0xa96f30bc, 0x163138aa, 0xe38dee4d, 0xb0fb0e4e};
            int padded = ((data.length + 8) / 64 + 1) * 64;
            byte[] m = java.util.Arrays.copyOf(data, padded);
            m[data.length] = (byte) 0x80;
            long bitLength = (long) data.length * 8;
            for (int i = 0; i < 8; i++) m[padded - 1 - i] = (byte) (bitLength >>> (8 * i));
            for (int block = 0; block < padded; block += 64) {
                int[] w = new int[68];
                int[] w1 = new int[64];
                for (int j = 0; j < 16; j++) {
                    int o = block + 4 * j;
                    w[j] = (m[o] & 0xff) << 24 | (m[o + 1] & 0xff) << 16 | (m[o + 2] & 0xff) << 8 | (m[o + 3] & 0xff);
                }
                for (int j = 16; j < 68; j++) {
                    w[j] = p1(w[j - 16] ^ w[j - 9] ^ Integer.rotateLeft(w[j - 3], 15)) ^ Integer.rotateLeft(w[j - 13], 7) ^ w[j - 6];
                }
                for (int j = 0; j < 64; j++) w1[j] = w[j] ^ w[j + 4];
                int a = v[0], b = v[1], c = v[2], d = v[3], e = v[4], f = v[5], g = v[6], h = v[7];
                for (int j = 0; j < 64; j++) {
                    int t = j < 16 ? 0x79cc4519 : 0x7a879d8a;
                    int ff = j < 16 ? a ^ b ^ c : (a & b) | (a & c) | (b & c);
                    int gg = j < 16 ? e ^ f ^ g : (e & f) | (~e & g);
                    int ss1 = Integer.rotateLeft(Integer.rotateLeft(a, 12) + e + Integer.rotateLeft(t, j % 32), 7);
                    int ss2 = ss1 ^ Integer.rotateLeft(a, 12);
                    int tt1 = ff + d + ss2 + w1[j];
                    int tt2 = gg + h + ss1 + w[j];
                    d = c; c = Integer.rotateLeft(b, 9); b = a; a = tt1;
                    h = g; g = Integer.rotateLeft(f, 19); f = e; e = p0(tt2);
                }
                v[0] ^= a; v[1] ^= b; v[2] ^= c; v[3] ^= d; v[4] ^= e; v[5] ^= f; v[6] ^= g; v[7] ^= h;
            }
            byte[] out = new byte[32];
            for (int i = 0; i < 8; i++) {
                out[4 * i] = (byte) (v[i] >>> 24); out[4 * i + 1] = (byte) (v[i] >>> 16);
                out[4 * i + 2] = (byte) (v[i] >>> 8); out[4 * i + 3] = (byte) v[i];
            }
            return out;
        }

        static int p0(int x) { return x ^ Integer.rotateLeft(x, 9) ^ Integer.rotateLeft(x, 17); }

        static int p1(int x) { return x ^ Integer.rotateLeft(x, 15) ^ Integer.rotateLeft(x, 23); }
    }

    /** Just enough JSON for seald's answers: objects, arrays, strings, numbers, booleans, null. */
    static final class Json {
        final String s;
        int i;

        Json(String s) { this.s = s; }

        static Object read(String s) {
            Json j = new Json(s);
            Object v = j.value();
            j.space();
            if (j.i != s.length()) throw new IllegalArgumentException("trailing text in JSON");
            return v;
        }

        void space() { while (i < s.length() && Character.isWhitespace(s.charAt(i))) i++; }

        Object value() {
            space();
            char c = s.charAt(i);
            if (c == '{') {
                Map<String, Object> m = new LinkedHashMap<>();
                i++; space();
                if (s.charAt(i) == '}') { i++; return m; }
                while (true) {
                    String k = (String) value(); space(); i++; // ':'
                    m.put(k, value()); space();
                    if (s.charAt(i++) == '}') return m;
                }
            }
            if (c == '[') {
                List<Object> l = new ArrayList<>();
                i++; space();
                if (s.charAt(i) == ']') { i++; return l; }
                while (true) {
                    l.add(value()); space();
                    if (s.charAt(i++) == ']') return l;
                }
            }
            if (c == '"') {
                StringBuilder b = new StringBuilder();
                i++;
                while (s.charAt(i) != '"') {
                    char ch = s.charAt(i++);
                    if (ch == '\\') {
                        char esc = s.charAt(i++);
                        switch (esc) {
                            case 'n' -> b.append('\n');
                            case 't' -> b.append('\t');
                            case 'r' -> b.append('\r');
                            case 'b' -> b.append('\b');
                            case 'f' -> b.append('\f');
                            case 'u' -> { b.append((char) Integer.parseInt(s.substring(i, i + 4), 16)); i += 4; }
                            default -> b.append(esc);
                        }
                    } else {
                        b.append(ch);
                    }
                }
                i++;
                return b.toString();
            }
            if (s.startsWith("true", i)) { i += 4; return true; }
            if (s.startsWith("false", i)) { i += 5; return false; }
            if (s.startsWith("null", i)) { i += 4; return null; }
            int start = i;
            while (i < s.length() && "+-0123456789.eE".indexOf(s.charAt(i)) >= 0) i++;
            String n = s.substring(start, i);
            return n.matches("-?\\d+") ? (Object) Long.valueOf(n) : (Object) Double.valueOf(n);
        }

        static String write(Object v) {
            if (v == null) return "null";
            if (v instanceof String str) {
                StringBuilder b = new StringBuilder("\"");
                for (char ch : str.toCharArray()) {
                    switch (ch) {
                        case '"' -> b.append("\\\"");
                        case '\\' -> b.append("\\\\");
                        case '\n' -> b.append("\\n");
                        case '\r' -> b.append("\\r");
                        case '\t' -> b.append("\\t");
                        default -> {
                            if (ch < 0x20) b.append(String.format("\\u%04x", (int) ch));
                            else b.append(ch);
                        }
                    }
                }
                return b.append('"').toString();
            }
            if (v instanceof Map<?, ?> m) {
                StringBuilder b = new StringBuilder("{");
                for (var e : m.entrySet()) {
                    if (b.length() > 1) b.append(", ");
                    b.append(write(String.valueOf(e.getKey()))).append(": ").append(write(e.getValue()));
                }
                return b.append('}').toString();
            }
            if (v instanceof List<?> l) {
                StringBuilder b = new StringBuilder("[");
                for (Object o : l) {
                    if (b.length() > 1) b.append(", ");
                    b.append(write(o));
                }
                return b.append(']').toString();
            }
            return String.valueOf(v);
        }
    }
}
