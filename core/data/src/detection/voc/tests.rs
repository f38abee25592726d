use std::path::Path;

use super::*;

const XML: &str = r#"<annotation>
  <folder>VOC2007</folder>
  <filename>000001.jpg</filename>
  <size><width>40</width><height>20</height><depth>3</depth></size>
  <object>
    <name>dog</name>
    <difficult>0</difficult>
    <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>10</xmax><ymax>20</ymax></bndbox>
  </object>
  <object>
    <name>person</name>
    <difficult>1</difficult>
    <bndbox><xmin>21</xmin><ymin>5</ymin><xmax>40</xmax><ymax>15</ymax></bndbox>
  </object>
</annotation>
"#;

#[test]
fn boxes_are_converted_from_one_based_inclusive() {
    let a = parse_annotation(Path::new("a.xml"), XML).expect("parses");
    assert_eq!(a.size, (40, 20));
    assert_eq!(a.filename.as_deref(), Some("000001.jpg"));
    assert_eq!(a.objects.len(), 2);
    assert_eq!(a.objects[0].bbox, [0.0, 1.0, 10.0, 19.0]);
    assert!(!a.objects[0].difficult);
    assert_eq!(a.objects[1].bbox, [20.0, 4.0, 20.0, 11.0]);
    assert!(a.objects[1].difficult);
}

fn error(text: &str) -> String {
    parse_annotation(Path::new("Annotations/x.xml"), text)
        .map(|_| ())
        .expect_err("refused")
        .to_string()
}

#[test]
fn bad_annotations_name_the_file_line_and_element() {
    let e = error("<annotation><size>");
    assert!(
        e.starts_with("Annotations/x.xml:1: xml: not well-formed XML"),
        "{e}"
    );
    let e = error(&XML.replace("<xmax>40</xmax>", "<xmax>41</xmax>"));
    assert!(
        e.starts_with("Annotations/x.xml:13: object[1]/bndbox: box"),
        "{e}"
    );
    assert!(e.contains("outside its 40x20 image"), "{e}");
    let e = error(&XML.replace("<ymin>2</ymin>", "<ymin>two</ymin>"));
    assert!(
        e.contains(":8: object[0]/bndbox/ymin: `two` is not a number"),
        "{e}"
    );
    let e = error(&XML.replace("<name>dog</name>", ""));
    assert!(e.contains(":5: object[0]: missing <name>"), "{e}");
    let e = error(&XML.replace("annotation>", "notes>"));
    assert!(e.contains("the root element must be <annotation>"), "{e}");
}

/// A VOC folder with two training and one test image (PNG data in `.jpg`
/// names is fine for the decoder, which sniffs the format; these are real
/// JPEGs).
pub(crate) fn voc_folder(dir: &Path) {
    for sub in ["Annotations", "JPEGImages", "ImageSets/Main"] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    let images = [("a", 40, 20), ("b", 30, 30), ("c", 24, 40)];
    for (id, w, h) in images {
        let img =
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 5) as u8, (y * 5) as u8, 90]));
        img.save(dir.join(format!("JPEGImages/{id}.jpg")))
            .expect("jpeg");
        let xml = XML
            .replace("000001.jpg", &format!("{id}.jpg"))
            .replace("<width>40</width>", &format!("<width>{w}</width>"))
            .replace("<height>20</height>", &format!("<height>{h}</height>"))
            .replace("<xmax>40</xmax>", &format!("<xmax>{w}</xmax>"))
            .replace("<ymax>20</ymax>", &format!("<ymax>{}</ymax>", h.min(20)))
            .replace("<ymax>15</ymax>", &format!("<ymax>{}</ymax>", h.min(15)));
        std::fs::write(dir.join(format!("Annotations/{id}.xml")), xml).expect("xml");
    }
    std::fs::write(dir.join("ImageSets/Main/trainval.txt"), "a\nb\n").expect("split");
    std::fs::write(dir.join("ImageSets/Main/test.txt"), "c\n").expect("split");
}

#[test]
fn a_voc_folder_loads_letterboxed_with_difficult_flags() {
    let dir = tempfile::tempdir().expect("tempdir");
    voc_folder(dir.path());
    let opts = LoadOptions {
        image_size: Some((32, 32)),
        ..LoadOptions::default()
    };
    let name = format!("voc:{}", dir.path().display());
    let set = crate::detection::load(&name, &opts, 0).expect("loads");
    assert_eq!(set.classes, 20, "VOC's classes");
    assert_eq!(set.shape, (3, 32, 32));
    assert_eq!((set.train.len(), set.test.len()), (2, 1));
    assert_eq!(set.train.images.len(), 2 * 3 * 32 * 32);
    let a = &set.train.objects[0];
    assert_eq!(a[0].class, 11, "dog");
    assert_eq!(a[1].class, 14, "person");
    assert!(a[1].difficult && !a[0].difficult);
    // 40x20 to 32x32: scale 0.8, 16 rows, 8 rows of padding on top.
    let info = &set.train.info[0];
    assert!((info.scale - 0.8).abs() < 1e-12 && info.pad_y == 8.0);
    assert_eq!(a[0].bbox, [0.0, 8.8, 8.0, 15.2]);
    assert_eq!(a[0].area, 190.0, "in the photo's pixels");
    // The ground truth is back in the photo's pixels.
    let gt = set.train.ground_truth(&set.class_names).expect("gt");
    assert_eq!(gt.annotations()[0].bbox.x, 0.0);
    assert!((gt.annotations()[0].bbox.h - 19.0).abs() < 1e-5);
    // Limits keep the first images of the split file.
    let one = crate::detection::load(
        &name,
        &LoadOptions {
            limit_train: Some(1),
            ..opts.clone()
        },
        0,
    )
    .expect("loads");
    assert_eq!(one.train.len(), 1);
}

#[test]
fn unknown_classes_and_missing_images_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    voc_folder(dir.path());
    let voc20: Vec<String> = VOC_CLASSES.iter().map(|c| (*c).to_owned()).collect();
    let c = dir.path().join("Annotations/c.xml");
    let text = std::fs::read_to_string(&c).expect("read");
    std::fs::write(&c, text.replace("<name>dog</name>", "<name>wolf</name>")).expect("write");
    let e = read_split(dir.path(), "test", &voc20, (3, 16, 16), None)
        .map(|_| ())
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("c.xml: object[0]/name: unknown class `wolf`"),
        "{e}"
    );
    std::fs::remove_file(dir.path().join("JPEGImages/a.jpg")).expect("rm");
    let e = read_split(dir.path(), "trainval", &voc20, (3, 16, 16), None)
        .map(|_| ())
        .expect_err("refused")
        .to_string();
    assert!(e.contains("a.jpg: missing"), "{e}");
    // A custom class set: the names found in the training split, sorted.
    let t = std::fs::read_to_string(dir.path().join("Annotations/a.xml")).expect("read");
    for id in ["a", "b"] {
        std::fs::write(
            dir.path().join(format!("Annotations/{id}.xml")),
            t.replace("<name>dog</name>", "<name>Tree</name>"),
        )
        .expect("write");
    }
    let classes = classes_of(dir.path(), &["trainval"]).expect("classes");
    assert_eq!(classes, ["Tree", "person"]);
    let classes = classes_of(dir.path(), &["trainval", "test"]).expect("classes");
    assert_eq!(classes, ["Tree", "person", "wolf"]);
}

#[test]
fn a_registered_voc_set_not_found_says_where_it_looked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LoadOptions {
        data_dir: Some(dir.path().to_path_buf()),
        ..LoadOptions::default()
    };
    let e = crate::detection::load("voc2007", &opts, 0)
        .map(|_| ())
        .expect_err("not there")
        .to_string();
    assert!(e.contains("VOCdevkit/VOC2007"), "{e}");
    voc_folder(&dir.path().join("VOCdevkit/VOC2007"));
    let set = crate::detection::load("voc2007", &opts, 0).expect("found");
    assert_eq!(set.shape, (3, 256, 256));
}
