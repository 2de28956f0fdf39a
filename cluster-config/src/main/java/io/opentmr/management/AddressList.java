package io.opentmr.management;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.List;

/**
 * IP addresses and CIDR blocks ({@code 127.0.0.1}, {@code 10.0.0.0/8}, {@code ::1}, {@code fd00::/8}); empty allows
 * every address. Literal addresses only: a host name would need a lookup per request.
 */
public final class AddressList {

    private record Block(byte[] network, int bits) {
        boolean contains(byte[] address) {
            if (address.length != network.length) {
                return false;
            }
            int whole = bits / 8;
            for (int i = 0; i < whole; i++) {
                if (address[i] != network[i]) {
                    return false;
                }
            }
            int rest = bits % 8;
            if (rest == 0) {
                return true;
            }
            int mask = (0xFF << (8 - rest)) & 0xFF;
            return (address[whole] & mask) == (network[whole] & mask);
        }
    }

    private final List<Block> blocks;
    private final List<String> written;

    private AddressList(List<Block> blocks, List<String> written) {
        this.blocks = blocks;
        this.written = written;
    }

    /** @throws IllegalArgumentException naming the entry that is not an IP address or CIDR block */
    public static AddressList parse(List<String> entries) {
        List<Block> blocks = new ArrayList<>();
        for (String entry : entries) {
            String text = entry.strip();
            int slash = text.indexOf('/');
            String host = slash < 0 ? text : text.substring(0, slash);
            if (!host.matches("[0-9a-fA-F:.]+") || !(host.contains(".") || host.contains(":"))) {
                throw new IllegalArgumentException("'" + entry + "' is not an IP address or CIDR block");
            }
            byte[] network;
            try {
                network = InetAddress.getByName(host).getAddress();
            } catch (UnknownHostException e) {
                throw new IllegalArgumentException("'" + entry + "' is not an IP address or CIDR block");
            }
            int bits = network.length * 8;
            if (slash >= 0) {
                try {
                    bits = Integer.parseInt(text.substring(slash + 1));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("'" + entry + "': the prefix length is not a number");
                }
                if (bits < 0 || bits > network.length * 8) {
                    throw new IllegalArgumentException("'" + entry + "': the prefix length must be 0.." + network.length * 8);
                }
            }
            blocks.add(new Block(network, bits));
        }
        return new AddressList(List.copyOf(blocks), List.copyOf(entries));
    }

    public boolean allowsAll() {
        return blocks.isEmpty();
    }

    /** Whether {@code address} may read; an unknown address (null) only when the list is empty. */
    public boolean allows(InetAddress address) {
        if (blocks.isEmpty()) {
            return true;
        }
        if (address == null) {
            return false;
        }
        byte[] raw = address.getAddress();
        return blocks.stream().anyMatch(block -> block.contains(raw));
    }

    @Override
    public String toString() {
        return blocks.isEmpty() ? "every address" : String.join(", ", written);
    }
}
