use super::*;
use crate::export::tests::small_report;

#[test]
fn exact_csv() {
    let csv = match CsvExporter.render(&small_report(Some("table1"), &[])) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        csv,
        "dataset,model,activation,optimizer,mean,std,ci_low,ci_high,n,diverged,failed,best,paper_mean,paper_spread,difference\n\
         cifar10,alexnet,relu,sgd,0.810000,0.010000,0.785159,0.834841,3,0,0,false,0.835100,3.95e-4,-0.025100\n\
         cifar10,vgg,relu,sgd,0.900000,,,,1,0,0,false,0.880000,1.01e-4,0.020000\n\
         cifar10,alexnet,arelu,sgd,0.860000,0.010000,0.835159,0.884841,3,1,0,true,0.833100,2.48e-4,0.026900\n\
         cifar10,vgg,arelu,sgd,,,,,0,1,0,false,0.832800,1.26e-3,\n"
    );
}
