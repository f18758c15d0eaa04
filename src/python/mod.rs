//! The thin pyo3 layer: `vmcoreinfo._native`. All logic lives in the pyo3-free core.

mod batch;
mod buffer;
mod convert;
mod cpus;
mod dump;
mod errors;
mod fwcfg;
mod info;
mod kview;
mod kview_log;
mod mapview;
mod objects;
mod paths;
mod progress;
mod records;
mod types;
mod value;

use pyo3::prelude::*;

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MAX_GUEST_NOTE_SIZE", crate::fwcfg::MAX_GUEST_NOTE_SIZE)?;
    m.add("MAX_READ_PHYS", dump::MAX_READ_PHYS)?;
    // Every format's name and whether it is a memory image: the one list the Python side
    // (CLI choices, identify_many/dask validation, `_types.FormatName`) is checked against.
    let formats: Vec<(&str, bool)> = crate::format::Format::ALL.iter().map(|f| (f.name(), f.is_memory_image())).collect();
    m.add("FORMATS", pyo3::types::PyTuple::new(m.py(), formats)?)?;
    // Every error hint: its name (`exc.hint`) and the advice as the message words it.
    let hints = pyo3::types::PyDict::new(m.py());
    for h in crate::error::Hint::ALL {
        hints.set_item(h.name(), h.advice())?;
    }
    m.add("HINTS", hints)?;
    m.add_class::<dump::Dump>()?;
    m.add_class::<dump::Note>()?;
    m.add_class::<crate::details::DumpDetails>()?;
    m.add_class::<crate::details::PhysBaseDetails>()?;
    m.add_class::<crate::details::ScanDetails>()?;
    m.add_class::<crate::details::UtsnameDetails>()?;
    m.add_class::<crate::details::PageCountDetails>()?;
    m.add_class::<crate::details::PageCodecDetails>()?;
    m.add_class::<records::KernelLayout>()?;
    m.add_class::<cpus::Cpu>()?;
    m.add_class::<cpus::PanicInfo>()?;
    m.add_class::<records::WriteReport>()?;
    m.add_class::<records::WriteDiagnostic>()?;
    m.add_class::<info::VmcoreInfo>()?;
    m.add_class::<info::Diagnostic>()?;
    m.add_class::<fwcfg::FwCfgEntry>()?;
    m.add_class::<fwcfg::FwCfgDevice>()?;
    m.add_class::<buffer::SharedBytes>()?;
    m.add_class::<batch::Identity>()?;
    m.add_class::<batch::IdentifyIter>()?;
    m.add_function(wrap_pyfunction!(batch::identify_many, m)?)?;
    m.add_class::<kview_log::LogRecord>()?;
    m.add_class::<kview_log::KernelSymbols>()?;
    m.add_class::<kview_log::SymbolIter>()?;
    m.add_class::<mapview::PyPhysView>()?;
    m.add_class::<objects::Task>()?;
    m.add_class::<objects::Module>()?;
    m.add_class::<objects::Symbol>()?;
    m.add_class::<types::Types>()?;
    m.add_class::<types::Type>()?;
    m.add_class::<types::Member>()?;
    m.add_class::<value::Value>()?;
    m.add_function(wrap_pyfunction!(value::container_of, m)?)?;
    m.add_function(wrap_pyfunction!(value::list_for_each_entry, m)?)?;
    m.add_function(wrap_pyfunction!(dump::open_dump, m)?)?;
    m.add_function(wrap_pyfunction!(info::parse, m)?)?;
    m.add_function(wrap_pyfunction!(fwcfg::check_guest_note, m)?)?;
    Ok(())
}
