//! Network interfaces on Unix (both layers; POSIX `if_nameindex`, which macOS has too).

/// The index of every network interface, for IPv6 multicast (which goes out
/// through one interface at a time). if_addrs lists addresses, and no
/// link-local IPv6 ones: a link with nothing else would be missed.
pub fn interface_indices() -> Vec<u32> {
    let mut indices = Vec::new();
    // SAFETY: if_nameindex returns null or an array that ends with an entry
    // of index 0; it is read up to that entry and freed once, after.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return indices;
        }
        let mut entry = list;
        while (*entry).if_index != 0 {
            indices.push((*entry).if_index);
            entry = entry.add(1);
        }
        libc::if_freenameindex(list);
    }
    indices
}
