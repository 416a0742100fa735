// Loads a properties file exactly as KCL's MultiLangDaemon does (Properties.load on an
// InputStream, so ISO-8859-1) and prints each value as hex UTF-16 code units, one
// `key<TAB>hex` line per property: ASCII output, whatever the platform's charset.
import java.io.FileInputStream;
import java.io.InputStream;
import java.util.Properties;

public class ReadProperties {
    public static void main(String[] args) throws Exception {
        Properties properties = new Properties();
        try (InputStream in = new FileInputStream(args[0])) {
            properties.load(in);
        }
        for (String key : properties.stringPropertyNames()) {
            StringBuilder hex = new StringBuilder();
            for (char c : properties.getProperty(key).toCharArray()) {
                hex.append(String.format("%04x", (int) c));
            }
            System.out.println(key + "\t" + hex);
        }
    }
}
