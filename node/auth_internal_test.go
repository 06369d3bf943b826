package node

import (
	"testing"

	"google.golang.org/grpc"

	hashfedv1 "github.com/hashfed/hashfed/proto/hashfed/v1"
)

// TestEveryMethodHasAPolicy: authorisation is default-deny, so a method
// added to a service without a policy entry would be refused to everyone.
func TestEveryMethodHasAPolicy(t *testing.T) {
	for _, sd := range []grpc.ServiceDesc{
		hashfedv1.PublishService_ServiceDesc,
		hashfedv1.SubscribeService_ServiceDesc,
		hashfedv1.LedgerService_ServiceDesc,
		hashfedv1.ClusterService_ServiceDesc,
		hashfedv1.GovernanceService_ServiceDesc,
		hashfedv1.SetService_ServiceDesc,
	} {
		var names []string
		for _, m := range sd.Methods {
			names = append(names, m.MethodName)
		}
		for _, s := range sd.Streams {
			names = append(names, s.StreamName)
		}
		for _, m := range names {
			if _, ok := policies["/"+sd.ServiceName+"/"+m]; !ok {
				t.Errorf("/%s/%s has no authorisation policy", sd.ServiceName, m)
			}
		}
	}
}
