//! Work stays (near) linear in the file size.

use migsim_format::caps::Capabilities;
use migsim_format::reader::{self};
use migsim_format::writer::{DeviceState, MigrationWriter};

use crate::alloc::*;
use crate::fixture::*;

// ---------------------------------------------------------------------------
// Work must stay (near) linear in the file size.

#[test]
fn many_devices_load_in_linear_time() {
    let devs: Vec<DeviceState> = (0..20_000)
        .map(|i| DeviceState {
            idstr: "dev".into(),
            instance_id: i,
            version_id: 1,
            payload: vec![i as u8; 2],
        })
        .collect();
    let mut w =
        MigrationWriter::start(Vec::new(), MACHINE, &Capabilities::none(), blocks()).unwrap();
    w.begin_iteration().unwrap();
    w.save_page(1, 0, &page(1)).unwrap();
    w.end_iteration().unwrap();
    w.begin_completion().unwrap();
    let (file, _) = w.finish(&devs).unwrap();
    let n = within(10, "inspecting 20,000 device sections", move || {
        reader::inspect(&file).map(|i| i.sections.len())
    });
    assert_eq!(n.unwrap(), 20_000 + 4);
}

#[test]
fn long_block_list_loads_in_linear_time() {
    use migsim_format::stream::{self, kind};
    use migsim_format::wire::Encoder;
    let n = 50_000u64;
    let mut e = Encoder::new();
    stream::encode_preamble(&mut e, MACHINE, &[]);
    stream::encode_section_start(&mut e, kind::START, 0, "ram", 0, 4);
    e.be64((n * PAGE) | 0x04);
    for i in 0..n {
        e.short_str(&format!("b{i:x}")).be64(PAGE);
    }
    e.be64(0x10);
    stream::encode_footer(&mut e, 0);
    e.u8(kind::EOF);
    let file = e.buf;
    let r = within(10, "inspecting a 50,000-block list", move || {
        reader::inspect(&file).map(|i| i.blocks.len())
    });
    assert_eq!(r.unwrap(), n as usize);
}
