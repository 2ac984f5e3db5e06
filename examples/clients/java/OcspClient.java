/*
 * A strict OCSP-stapling TLS client in plain Java 17 (JSSE, no dependencies), the way a Kafka,
 * Cassandra or Elasticsearch client checks revocation: it asks for a staple (status_request,
 * jdk.tls.client.enableStatusRequestExtension) and validates the server's chain with a
 * PKIXRevocationChecker, which JSSE hands the stapled OCSP response to.
 *
 * Usage: java OcspClient.java HOST PORT SERVERNAME CAFILE
 *
 * Exit 0 and "connected (staple: N response(s))" when the handshake completed; exit 1 and one
 * line "refused: <the JDK's own words>" when it did not (e.g. "Certificate has been revoked",
 * "Certificate's revocation status is unknown"); exit 2 on bad usage. With no staple, the JDK's
 * checker asks the certificate's OCSP responder (AIA) itself, as the JDK documents; it never falls
 * back to CRLs (NO_FALLBACK) and never soft-fails.
 */
import java.io.FileInputStream;
import java.io.InputStream;
import java.security.KeyStore;
import java.security.cert.CertPathBuilder;
import java.security.cert.CertificateFactory;
import java.security.cert.PKIXBuilderParameters;
import java.security.cert.PKIXRevocationChecker;
import java.security.cert.X509CertSelector;
import java.security.cert.X509Certificate;
import java.util.EnumSet;
import java.util.List;
import javax.net.ssl.CertPathTrustManagerParameters;
import javax.net.ssl.ExtendedSSLSession;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

public class OcspClient {
  public static void main(String[] args) throws Exception {
    if (args.length != 4) {
      System.err.println("usage: java OcspClient.java HOST PORT SERVERNAME CAFILE");
      System.exit(2);
    }
    String host = args[0];
    int port = Integer.parseInt(args[1]);
    String servername = args[2];
    // Ask for a staple (RFC 6066 status_request); the JDK's own OCSP query gives up after 3 s.
    System.setProperty("jdk.tls.client.enableStatusRequestExtension", "true");
    System.setProperty("com.sun.security.ocsp.timeout", "3");

    KeyStore anchors = KeyStore.getInstance(KeyStore.getDefaultType());
    anchors.load(null, null);
    try (InputStream in = new FileInputStream(args[3])) {
      int i = 0;
      for (var cert : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
        anchors.setCertificateEntry("ca" + i++, cert);
      }
    }
    // Revocation of the server's certificate by OCSP only (staple first), failing hard.
    PKIXRevocationChecker revocation = (PKIXRevocationChecker) CertPathBuilder.getInstance("PKIX").getRevocationChecker();
    revocation.setOptions(EnumSet.of(PKIXRevocationChecker.Option.ONLY_END_ENTITY, PKIXRevocationChecker.Option.NO_FALLBACK));
    PKIXBuilderParameters pkix = new PKIXBuilderParameters(anchors, new X509CertSelector());
    pkix.setRevocationEnabled(true);
    pkix.addCertPathChecker(revocation);
    TrustManagerFactory tmf = TrustManagerFactory.getInstance("PKIX");
    tmf.init(new CertPathTrustManagerParameters(pkix));
    SSLContext tls = SSLContext.getInstance("TLS");
    tls.init(null, tmf.getTrustManagers(), null);

    try (SSLSocket socket = (SSLSocket) tls.getSocketFactory().createSocket(host, port)) {
      socket.setSoTimeout(10_000);
      SSLParameters params = socket.getSSLParameters();
      params.setServerNames(List.of(new SNIHostName(servername)));
      params.setEndpointIdentificationAlgorithm("HTTPS");
      socket.setSSLParameters(params);
      socket.startHandshake();
      List<byte[]> staples = ((ExtendedSSLSession) socket.getSession()).getStatusResponses();
      System.out.println("connected (" + socket.getSession().getProtocol() + ", staple: " + staples.size() + " response(s))");
    } catch (Exception e) {
      // The validator's own words: the innermost cause, after the outermost when they differ.
      Throwable t = e;
      while (t.getCause() != null) t = t.getCause();
      String outer = String.valueOf(e.getMessage());
      String inner = String.valueOf(t.getMessage());
      System.out.println("refused: " + (outer.contains(inner) ? outer : outer + " (" + inner + ")"));
      System.exit(1);
    }
  }
}
