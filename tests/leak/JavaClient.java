// java JavaClient.java HOST PORT MESSAGE: what a Java program does with a
// socket: resolve through the JDK (getaddrinfo), connect a dual-stack
// AF_INET6 socket to the v4-mapped address, write, read the echo.
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;

public class JavaClient {
	public static void main(String[] a) throws Exception {
		byte[] msg = a[2].getBytes(StandardCharsets.US_ASCII);
		try (Socket s = new Socket()) {
			s.connect(new InetSocketAddress(a[0], Integer.parseInt(a[1])),
			          20000);
			s.setSoTimeout(20000);
			OutputStream out = s.getOutputStream();
			out.write(msg);
			out.flush();
			InputStream in = s.getInputStream();
			byte[] got = new byte[msg.length];
			int n = 0;
			while (n < got.length) {
				int r = in.read(got, n, got.length - n);
				if (r < 0)
					throw new Exception("EOF after " + n + " bytes");
				n += r;
			}
			System.out.println("echo: " +
			                   new String(got, StandardCharsets.US_ASCII));
		}
	}
}
