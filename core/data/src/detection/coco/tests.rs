use std::path::Path;

use super::*;

const JSON: &str = r#"{
  "images": [
    {"id": 7, "file_name": "b.jpg", "width": 40, "height": 20},
    {"id": 3, "file_name": "a.jpg", "width": 20, "height": 20}
  ],
  "annotations": [
    {"id": 1, "image_id": 7, "category_id": 18, "bbox": [1.5, 2.0, 10.0, 8.0], "area": 70.0, "iscrowd": 0},
    {"id": 2, "image_id": 7, "category_id": 1, "bbox": [20.0, 0.0, 20.0, 20.5], "iscrowd": 1},
    {"id": 3, "image_id": 3, "category_id": 1, "bbox": [0.0, 0.0, 5.0, 5.0]}
  ],
  "categories": [
    {"id": 18, "name": "dog"},
    {"id": 1, "name": "person"}
  ]
}"#;

#[test]
fn categories_map_to_contiguous_classes_in_id_order() {
    let inst = parse_instances(Path::new("i.json"), JSON).expect("parses");
    assert_eq!(inst.class_names, ["person", "dog"]);
    assert_eq!(inst.images.len(), 2);
    let b = &inst.images[0];
    assert_eq!((b.id, b.size), (7, (40, 20)));
    assert_eq!(b.objects[0], (1, [1.5, 2.0, 10.0, 8.0], false, 70.0));
    // Within the slack past the border: clipped; no area given: the box's.
    assert_eq!(b.objects[1], (0, [20.0, 0.0, 20.0, 20.0], true, 410.0));
    assert_eq!(inst.images[1].objects[0].0, 0);
}

fn error(text: &str) -> String {
    parse_instances(Path::new("annotations/instances_val2017.json"), text)
        .map(|_| ())
        .expect_err("refused")
        .to_string()
}

#[test]
fn bad_instances_name_the_file_and_element() {
    let e = error(&JSON.replace("\"categories\"", "\"categories\" x"));
    assert!(
        e.starts_with("annotations/instances_val2017.json:11: column"),
        "{e}"
    );
    let e = error(&JSON.replace("\"category_id\": 18", "\"category_id\": 99"));
    assert!(
        e.ends_with("annotations[0] (id 1): unknown category_id 99"),
        "{e}"
    );
    let e = error(&JSON.replace("\"image_id\": 3", "\"image_id\": 4"));
    assert!(
        e.contains("annotations[2] (id 3): unknown image_id 4"),
        "{e}"
    );
    let e = error(&JSON.replace("[0.0, 0.0, 5.0, 5.0]", "[18.0, 0.0, 5.0, 5.0]"));
    assert!(
        e.contains("annotations[2] (id 3): bbox [18.0, 0.0, 5.0, 5.0] is outside"),
        "{e}"
    );
    let e = error(&JSON.replace("\"id\": 3, \"file_name\"", "\"id\": 7, \"file_name\""));
    assert!(e.contains("images[1] (id 7): image id given twice"), "{e}");
    let e = error("{\"images\": []}");
    assert!(e.contains("missing field `categories`"), "{e}");
}

/// A COCO folder: `annotations/instances_{train,val}2017.json` and two
/// photos in each of `train2017/` and `val2017/`.
pub(crate) fn coco_folder(dir: &Path) {
    std::fs::create_dir_all(dir.join("annotations")).expect("mkdir");
    for split in ["train2017", "val2017"] {
        std::fs::create_dir_all(dir.join(split)).expect("mkdir");
        for (f, w, h) in [("a.jpg", 20, 20), ("b.jpg", 40, 20)] {
            image::RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]))
                .save(dir.join(split).join(f))
                .expect("jpeg");
        }
        std::fs::write(
            dir.join(format!("annotations/instances_{split}.json")),
            JSON,
        )
        .expect("json");
    }
}

#[test]
fn a_coco_folder_loads_with_crowds_and_cocos_own_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    coco_folder(dir.path());
    let name = format!("coco:{}", dir.path().display());
    let opts = LoadOptions {
        image_size: Some((20, 40)),
        ..LoadOptions::default()
    };
    let set = crate::detection::load(&name, &opts, 0).expect("loads");
    assert_eq!((set.classes, set.shape), (2, (3, 20, 40)));
    assert_eq!(set.test.info[0].id, 7, "COCO's image ids");
    assert!(set.test.objects[0][1].crowd);
    let gt = set.test.ground_truth(&set.class_names).expect("gt");
    assert_eq!(gt.annotations().len(), 3);
    // A photo whose size is not the one its entry claims.
    image::RgbImage::from_pixel(21, 20, image::Rgb([0, 0, 0]))
        .save(dir.path().join("val2017/a.jpg"))
        .expect("jpeg");
    let e = crate::detection::load(&name, &opts, 0)
        .map(|_| ())
        .expect_err("refused")
        .to_string();
    assert!(e.contains("instances_val2017.json: image 3"), "{e}");
    assert!(
        e.contains("the annotation says 20x20 but the file is 21x20"),
        "{e}"
    );
}
